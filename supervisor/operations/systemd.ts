import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { closeFd, sendDatagram, unixDgramSocket } from "../../native/index.js";
import { isSyscallError } from "../../common/errors.js";
import { unixSocketPath } from "../../common/unix-path.js";
import type { Logger } from "../../common/log.js";
import type { Supervisor } from "../supervisor.js";

/** How long a datagram may wait for room in systemd's queue before notification is given up. */
const SEND_DEADLINE_MS = 5000;

/**
 * sd_notify(3) for a Type=notify unit: one datagram per state change to
 * $NOTIFY_SOCKET, in order, fds (the fd store) carried with SCM_RIGHTS. A
 * socket that cannot be used is reported once and then ignored: notification
 * must never stop the proxy.
 */
export class SystemdNotifier {
  private socket: number | undefined;
  private readonly path: string | undefined;
  private broken = false;
  /** After STOPPING=1, a reload that starts or ends (rolled back by the stop) must not say RELOADING=1 or READY=1. */
  private stopped = false;
  /** MAINPID= names another process now: nothing more is said for the service. */
  private handedOver = false;
  /** Datagrams go out one at a time, in the order they were asked for. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly log: Logger, notifySocket = process.env.NOTIFY_SOCKET) {
    // An abstract address keeps its "@" (the addon makes it a leading NUL). A
    // path longer than sun_path is reached through its directory's fd, kept
    // open (close-on-exec) for the supervisor's life.
    if (notifySocket?.startsWith("@")) this.path = notifySocket;
    else if (notifySocket) this.path = reachable(notifySocket);
  }

  get enabled(): boolean {
    return this.path !== undefined && !this.broken;
  }

  /** Queues one datagram; resolves once it is sent or given up. `fds` stay the caller's. */
  send(text: string, fds: number[] = []): Promise<void> {
    const next = this.queue.then(() => this.sendNow(text, fds));
    this.queue = next;
    return next;
  }

  /** Resolves once everything asked for so far has been sent or given up. */
  flushed(): Promise<void> {
    return this.queue;
  }

  private async sendNow(text: string, fds: number[]): Promise<void> {
    if (!this.enabled) return;
    const data = Buffer.from(text);
    const deadline = Date.now() + SEND_DEADLINE_MS;
    for (;;) {
      try {
        this.socket ??= unixDgramSocket();
        sendDatagram(this.socket, this.path!, data, fds);
        return;
      } catch (err) {
        // systemd reads its queue as it can: a full one is waited out, not a failure.
        if (isSyscallError(err) && err.code === "EAGAIN" && Date.now() < deadline) {
          await sleep(2);
          continue;
        }
        this.fail(err);
        return;
      }
    }
  }

  private fail(err: unknown): void {
    if (this.broken) return;
    this.broken = true;
    this.log.warn({ event: "sd_notify_unavailable", socket: process.env.NOTIFY_SOCKET, reason: (err as Error).message });
    this.close();
  }

  /** `newMain`: this process has taken over from another (an upgrade) and says so (MAINPID=). */
  ready(sup: Supervisor, newMain = false): void {
    if (this.stopped) return;
    void this.send(`${newMain ? `MAINPID=${process.pid}\n` : ""}READY=1\nSTATUS=${statusLine(sup)}`);
  }

  reloading(): void {
    if (this.stopped) return;
    const usec = process.hrtime.bigint() / 1000n; // CLOCK_MONOTONIC, as systemd expects
    void this.send(`RELOADING=1\nMONOTONIC_USEC=${usec}\nSTATUS=reloading`);
  }

  stopping(): void {
    if (this.handedOver) return;
    this.stopped = true;
    void this.send("STOPPING=1\nSTATUS=draining connections and stopping");
  }

  /**
   * This process has handed the service over to `pid` (an upgrade): systemd
   * follows that one from now on, and this one says nothing more, least of all
   * STOPPING=1 as it drains and exits.
   */
  async handOverTo(pid: number): Promise<void> {
    await this.send(`MAINPID=${pid}\nSTATUS=handed over to pid ${pid}; draining`);
    this.stopped = true;
    this.handedOver = true;
  }

  close(): void {
    if (this.socket !== undefined) closeFd(this.socket);
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
