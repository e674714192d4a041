import path from "node:path";
import { DgramSocket } from "node-unix-socket";
import { unixSocketPath } from "../../common/unix-path.js";
import type { Logger } from "../../common/log.js";
import type { Supervisor } from "../supervisor.js";

/**
 * sd_notify(3) for a Type=notify unit: one datagram per state change to
 * $NOTIFY_SOCKET. A socket that cannot be used is reported once and then
 * ignored: notification must never stop the proxy.
 */
export class SystemdNotifier {
  private socket: DgramSocket | undefined;
  private readonly path: string | undefined;
  private broken = false;
  /** After STOPPING=1, a reload that starts or ends (rolled back by the stop) must not say RELOADING=1 or READY=1. */
  private stopped = false;

  constructor(private readonly log: Logger, notifySocket = process.env.NOTIFY_SOCKET) {
    // An abstract address ("@name") is the same name with a leading NUL byte. A
    // path longer than sun_path is reached through its directory's fd, kept
    // open (close-on-exec) for the supervisor's life.
    if (notifySocket?.startsWith("@")) this.path = `\0${notifySocket.slice(1)}`;
    else if (notifySocket) this.path = reachable(notifySocket);
  }

  get enabled(): boolean {
    return this.path !== undefined && !this.broken;
  }

  private send(text: string): void {
    if (!this.enabled) return;
    const fail = (err: unknown) => {
      if (this.broken) return;
      this.broken = true;
      this.log.warn({ event: "sd_notify_unavailable", socket: process.env.NOTIFY_SOCKET, reason: (err as Error).message });
      this.close();
    };
    try {
      if (!this.socket) {
        this.socket = new DgramSocket();
        this.socket.on("error", fail);
      }
      const buf = Buffer.from(text);
      this.socket.sendTo(buf, 0, buf.length, this.path!, (err) => {
        if (err) fail(err);
      });
    } catch (err) {
      fail(err);
    }
  }

  ready(sup: Supervisor): void {
    if (this.stopped) return;
    this.send(`READY=1\nSTATUS=${statusLine(sup)}`);
  }

  reloading(): void {
    if (this.stopped) return;
    const usec = process.hrtime.bigint() / 1000n; // CLOCK_MONOTONIC, as systemd expects
    this.send(`RELOADING=1\nMONOTONIC_USEC=${usec}\nSTATUS=reloading`);
  }

  stopping(): void {
    this.stopped = true;
    this.send("STOPPING=1\nSTATUS=draining connections and stopping");
  }

  close(): void {
    try {
      this.socket?.close();
    } catch {
      /* already closed */
    }
    this.socket = undefined;
  }
}

/** The path to send to; a long one whose directory cannot be opened stays as it is, for sendTo to report. */
function reachable(socketPath: string): string {
  try {
    return unixSocketPath(path.dirname(socketPath), path.basename(socketPath)).path;
  } catch {
    return socketPath;
  }
}

function statusLine(sup: Supervisor): string {
  const gen = sup.pool.current;
  const last = sup.lastReload;
  const reload = last === undefined ? "none" : last.ok ? `ok (generation ${last.generation})` : `FAILED: ${last.message}`;
  const workers = gen?.workers().filter((w) => w.state === "serving").length ?? 0;
  return `generation ${gen?.number ?? "-"}, ${workers} workers, ${gen?.plan.apps.length ?? 0} apps, steering ${sup.provider.mode}, last reload ${reload}`.replace(/\n/g, " ");
}
