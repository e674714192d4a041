import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { CHANNEL_FD, COUNTERS_FD, HANDOFF_FD } from "../../common/messages.js";
import { Channel, type ChannelEvents } from "../../common/channel.js";
import { closeFd, socketPair } from "../../native/index.js";
import { bundleIfCurrent } from "../../common/bundle-choice.js";
import { distDir } from "../dist-dir.js";

/** The worker's fd of its access-log pipe (stdio index in spawn). */
export const ACCESS_LOG_FD = 5;

/**
 * The worker's code as one bundle (`make build`: dist/worker/bundle.js), which
 * starts about 30 ms of CPU and 2 MiB faster and smaller than its 30 modules;
 * the modules themselves when there is no bundle or it is older than any of
 * them (a `tsc` run after the last `make build`). Decided once per supervisor.
 */
function chooseWorkerEntry(): string {
  return bundleIfCurrent(
    path.join(distDir, "worker", "bundle.js"),
    path.join(distDir, "worker", "main.js"),
    ["worker", "common", "native", "config"].map((d) => path.join(distDir, d)),
  );
}

const workerEntry = chooseWorkerEntry();

/** When the worker's code was last changed (an install, a build); 0 if it cannot be read. */
function entryChangedAt(): number {
  try {
    return fs.statSync(workerEntry).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * V8 flags for workers. A worker's garbage is short-lived per-connection
 * objects; V8 lets the young generation grow to 3 x 16 MiB semi-spaces under
 * connection churn (about 25 MiB of a busy worker's RSS). 2 MiB semi-spaces
 * keep scavenges cheap and frequent at no measurable cost in throughput.
 */
const WORKER_NODE_FLAGS = [
  "--max-semi-space-size=2",
  // A USR1 sent to the whole unit (`systemctl kill -s USR1`) would open Node's inspector
  // on 127.0.0.1:9229 in a worker still loading, before its own handler is in (Node >= 22.14).
  ...(process.allowedNodeEnvironmentFlags.has("--disable-sigusr1") ? ["--disable-sigusr1"] : []),
];

/** Events kept from a worker not yet adopted (beyond "loaded", one means it is broken). */
const EARLY_EVENTS_MAX = 16;

/** What every worker process of this supervisor is started with, whatever it will serve. */
export interface LaunchOptions {
  env: NodeJS.ProcessEnv;
  drainTimeoutMs: number;
  /** Give the worker a pipe for access-log lines. */
  accessLog: boolean;
  /** The shared connection counters' memfd (MaxConnections), at COUNTERS_FD. */
  countersFd: number;
  /**
   * Where Node (22.1 and later) keeps compiled code between worker starts
   * (NODE_COMPILE_CACHE); older Node ignores it. null: none.
   */
  compileCacheDir: string | null;
}

/**
 * A worker process started with its channel and hand-over socket, loading its
 * modules, not yet told what to serve: a WorkerProcess adopts it (at once, or
 * later as a warm spare, supervisor/workers/spare-workers.ts).
 */
export class WorkerLaunch {
  readonly launchedAt = Date.now();
  /** The worker's code as this process loaded it: a process is not reused once that changed (runsCurrentCode). */
  private readonly codeChangedAt = entryChangedAt();
  /** Set once a WorkerProcess or the spares' owner took charge of the fds. */
  private released = false;
  /** The worker said "loaded": its modules are in, a plan is all it waits for. */
  loaded = false;
  /** How many generations this process has served and come back from (a recycled worker: supervisor/workers/spare-workers.ts). */
  recycled = 0;
  private accessLogTaken = false;
  private handoffOpen = true;
  private markSettled!: () => void;
  /** Resolves once the worker has said "loaded" (since it was started or last reclaimed), or its channel closed (it died first). */
  settled = new Promise<void>((resolve) => (this.markSettled = resolve));
  /** The channel, read from the start so that "loaded" is seen; its events go to the adopter. */
  private readonly channel: Channel;
  private adopter: ChannelEvents | undefined;
  /** What came before adoption, other than "loaded" (a broken worker's bytes, its exit): replayed to the adopter in order. */
  private readonly early: ((to: ChannelEvents) => void)[] = [];
  /** A spare that said more than "loaded" unasked is broken: not adopted. */
  get talkedOutOfTurn(): boolean {
    return this.early.length > 0;
  }

  private constructor(
    readonly child: ChildProcess,
    channelFd: number,
    /** Our end of the socket the listeners are sent over. */
    readonly handoffFd: number,
    readonly accessLog: Readable | null,
    readonly countersFd: number,
  ) {
    this.channel = new Channel(channelFd, {
      message: (m) => {
        if (this.adopter) return this.adopter.message(m);
        if (!this.loaded && typeof m === "object" && m !== null && (m as { type?: unknown }).type === "loaded") {
          this.loaded = true;
          this.markSettled();
          return;
        }
        // Held back only to be replayed; a spare that said anything is not adopted, so a few are plenty.
        if (this.early.length < EARLY_EVENTS_MAX) this.early.push((to) => to.message(m));
      },
      invalid: (reason, preview) => (this.adopter ? this.adopter.invalid(reason, preview) : this.early.push((to) => to.invalid(reason, preview))),
      close: () => {
        this.markSettled();
        if (this.adopter) this.adopter.close();
        else this.early.push((to) => to.close());
      },
    });
  }

  /**
   * Out of fds, a socketpair throws here; a fork that fails (EMFILE, EAGAIN)
   * does not throw: the child has no pid and emits "error" on the next tick,
   * with no "exit" to follow (the adopter listens for it).
   */
  static start(opts: LaunchOptions): WorkerLaunch {
    const [ours, theirs] = socketPair();
    let channelPair: [number, number];
    try {
      channelPair = socketPair();
    } catch (err) {
      closeFd(ours);
      closeFd(theirs);
      throw err;
    }
    const [channelOurs, channelTheirs] = channelPair;
    const stdio: ("ignore" | "inherit" | "pipe" | number)[] = ["ignore", "inherit", "inherit"];
    stdio[CHANNEL_FD] = channelTheirs;
    stdio[HANDOFF_FD] = theirs;
    stdio[ACCESS_LOG_FD] = opts.accessLog ? "pipe" : "ignore";
    stdio[COUNTERS_FD] = opts.countersFd;
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...WORKER_NODE_FLAGS, workerEntry], {
        stdio,
        // UV_TCP_SINGLE_ACCEPT: all workers wait on the same listening sockets, and libuv
        // otherwise accepts until the queue is empty, so the first to wake takes a whole
        // burst (2x more than its peer on a busy machine); one accept per wake-up spreads them.
        env: {
          UV_TCP_SINGLE_ACCEPT: "1",
          ...(opts.compileCacheDir !== null ? { NODE_COMPILE_CACHE: opts.compileCacheDir } : {}),
          ...opts.env,
          SWITCHYARD_DRAIN_TIMEOUT_MS: String(opts.drainTimeoutMs),
          ...(opts.accessLog ? { SWITCHYARD_ACCESS_LOG_FD: String(ACCESS_LOG_FD) } : {}),
        },
      });
    } catch (err) {
      closeFd(ours);
      closeFd(channelOurs);
      throw err;
    } finally {
      closeFd(theirs);
      closeFd(channelTheirs);
    }
    const accessLog = (child.stdio as unknown as (Readable | null)[] | undefined)?.[ACCESS_LOG_FD] ?? null;
    return new WorkerLaunch(child, channelOurs, ours, accessLog, opts.countersFd);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the code this process loaded is still what a new process would load: a reload after an install runs the new code. */
  runsCurrentCode(): boolean {
    return entryChangedAt() === this.codeChangedAt;
  }

  /** Its access-log pipe, once: a recycled process keeps the pipe, which its first adopter already forwards. */
  takeAccessLog(): Readable | null {
    if (this.accessLogTaken) return null;
    this.accessLogTaken = true;
    return this.accessLog;
  }

  /**
   * The adopter gives the process back: its generation drained and it has
   * set itself back to a spare, whose "loaded" comes next. Its fds are this
   * launch's again; a spares' owner takes it, or discards it.
   */
  reclaim(): void {
    if (!this.released) throw new Error("worker launch reclaimed while not adopted");
    this.released = false;
    this.adopter = undefined;
    this.loaded = false;
    this.recycled += 1;
    this.settled = new Promise<void>((resolve) => (this.markSettled = resolve));
  }

  /** Once the process has exited: the hand-over socket is no longer needed (the channel closes by itself). */
  closeHandoff(): void {
    if (this.handoffOpen) {
      this.handoffOpen = false;
      closeFd(this.handoffFd);
    }
  }

  /** Its process has not exited (nor been killed). */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Hands the process and its fds to an adopter (WorkerProcess), which closes
   * them once the process exited, or gives them back (reclaim()); the channel's events go to `events`, those that came
   * before on the next tick (the adopter is still being constructed).
   */
  adopt(events: ChannelEvents): Channel {
    if (this.released) throw new Error("worker launch adopted twice");
    this.released = true;
    const early = this.early.splice(0);
    if (early.length === 0) {
      this.adopter = events;
      return this.channel;
    }
    // Until the replay, later events queue behind the early ones.
    this.adopter = { message: (m) => early.push((to) => to.message(m)), invalid: (r, p) => early.push((to) => to.invalid(r, p)), close: () => early.push((to) => to.close()) };
    setImmediate(() => {
      this.adopter = events;
      for (const deliver of early) deliver(events);
    });
    return this.channel;
  }

  /** A spare no one will adopt: killed, our ends closed. It holds no listener and no client. */
  discard(): void {
    if (this.released) return;
    this.released = true;
    if (this.running) this.child.kill("SIGKILL");
    // Once forwarded (a recycled process), the sink reads it to its end: the last generation's lines may still be in it.
    if (!this.accessLogTaken) this.accessLog?.destroy();
    this.channel.destroy();
    this.closeHandoff();
  }
}
