import dns from "node:dns";
import net from "node:net";

export type CheckResult = { ok: true } | { ok: false; reason: string };

export interface TcpCheck {
  /** Settles within `timeoutMs` (or at once on abort): the verdict. */
  result: Promise<CheckResult>;
  /**
   * Settles once nothing of the check is left: a name lookup cannot be
   * cancelled and holds one of libuv's few threadpool threads until the
   * resolver answers, past the verdict. The prober's concurrency bound
   * counts a check until then, so a dead resolver cannot pile lookups up.
   */
  finished: Promise<void>;
}

/**
 * One TCP connect check: the name resolved by the system resolver (as a
 * worker would), a connection opened and closed at once. Any failure (lookup,
 * refused, unreachable, no answer within `timeoutMs`) is a failed check, named
 * by its errno code or "timeout".
 */
export function tcpCheck(host: string, port: number, timeoutMs: number, signal: AbortSignal): TcpCheck {
  let settle!: (r: CheckResult) => void;
  let finish!: () => void;
  const result = new Promise<CheckResult>((resolve) => (settle = resolve));
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let socket: net.Socket | undefined;
  let done = false;
  let lookupPending = false;
  const end = (r: CheckResult): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    socket?.destroy();
    settle(r);
    if (!lookupPending) finish();
  };
  const onAbort = (): void => end({ ok: false, reason: "stopped" });
  const timer = setTimeout(() => end({ ok: false, reason: "timeout" }), timeoutMs);
  signal.addEventListener("abort", onAbort);
  const connect = (address: string): void => {
    if (done) return;
    socket = net.connect({ host: address, port });
    socket.once("connect", () => end({ ok: true }));
    socket.once("error", (err: NodeJS.ErrnoException) => end({ ok: false, reason: err.code ?? "error" }));
  };
  if (signal.aborted) onAbort();
  else if (net.isIP(host) !== 0) connect(host);
  else {
    lookupPending = true;
    dns.lookup(host, (err, address) => {
      lookupPending = false;
      if (err) end({ ok: false, reason: err.code ?? "lookup_failed" });
      else connect(address);
      if (done) finish();
    });
  }
  return { result, finished };
}
