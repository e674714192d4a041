import fs from "node:fs";
import os from "node:os";
import type { Logger } from "../../common/log.js";
import type { WorkerLaunch } from "./worker-launch.js";

/** How much lower than the supervisor's a spare's CPU priority is while it loads (nice steps). */
const SPARE_NICENESS = 5;

/**
 * How long a draining worker that may come back as a spare is counted as
 * coming: past this (long connections keep it), processes are started instead,
 * and it is let go if it comes back to no free place.
 */
const RECYCLE_WAIT_MS = 2000;

/** Backoff after a spare that could not be started or died unadopted: 0.5 s, doubling, at most 30 s. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

export interface SpareOptions {
  /** How many spares to keep; 0: none (every worker is started when needed). */
  count: number;
  launch(): WorkerLaunch;
  /** Whether a spare can still be adopted: it was started with what a worker needs now (the counters' fd, the code on disk). */
  fits(launch: WorkerLaunch): boolean;
  /** A generation is being started: spares are filled after its cut-over, not while it needs the CPU. */
  busy(): boolean;
  log: Logger;
}

/** A draining worker's place among the spares: it comes back, or it does not (it exited). */
export interface SpareReservation {
  /** True: kept as a spare; false: discarded (came too late, no room, or it no longer fits). */
  returned(launch: WorkerLaunch): boolean;
  lost(): void;
}

/**
 * Warm spare workers: processes started ahead, Node and modules loaded,
 * waiting for a plan and their fds. A reload or a crashed worker's
 * replacement takes one instead of paying a process start on the critical
 * path. They are started after a cut-over, at a lower CPU priority so that
 * loading them does not take CPU from the serving workers, and given the
 * supervisor's priority back when adopted. They hold no listener and no
 * client, so stopping one is a SIGKILL. Cost: one idle worker's memory each
 * (`spares` in /status), bounded by --spare-workers.
 *
 * A worker whose generation drained with nothing cut comes back as a spare
 * (recycled): a reload then starts no process at all, neither for its new
 * generation nor to replace the spares it took. Spares are started only for
 * the places no draining worker is coming back to within RECYCLE_WAIT_MS.
 */
export class SpareWorkers {
  /** Each spare, whether it was started at a lower priority, and the way to stop watching its exit once someone else takes it. */
  private readonly idle: { launch: WorkerLaunch; niced: boolean; forgetExit(): void }[] = [];
  /** Draining workers expected back as spares, each with the timer that gives up waiting for it. */
  private readonly coming = new Set<NodeJS.Timeout>();
  private stopped = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Cleared once lowering a spare's priority turned out not to be undoable (no CAP_SYS_NICE). */
  private renice = true;
  private readonly ownPriority = os.getPriority();

  constructor(private readonly opts: SpareOptions) {}

  /** Starts spares up to the count. Called after a cut-over, when nothing else needs the CPU first. */
  fill(): void {
    if (this.stopped || this.retryTimer !== undefined) return;
    while (this.idle.length + this.coming.size < this.opts.count) {
      if (!this.launchOne()) return;
    }
  }

  /**
   * Asked for a worker told to drain: a place among the spares if the spares,
   * counting those already coming back, are short of one; undefined otherwise.
   */
  reserve(): SpareReservation | undefined {
    if (this.stopped || this.idle.length + this.coming.size >= this.opts.count) return undefined;
    // Late (long connections keep it): no longer counted, and fill() starts a process for its place.
    const late = setTimeout(() => {
      this.coming.delete(late);
      this.fillUnlessBusy();
    }, RECYCLE_WAIT_MS).unref();
    this.coming.add(late);
    let settled = false;
    const settle = (): void => {
      settled = true;
      clearTimeout(late);
      this.coming.delete(late);
    };
    return {
      returned: (launch) => {
        if (settled) {
          launch.discard();
          return false;
        }
        settle();
        return this.keepReturned(launch);
      },
      lost: () => {
        if (settled) return;
        settle();
        this.fillUnlessBusy();
      },
    };
  }

  /** A generation starting now fills the spares after its cut-over: starting processes in the middle of it would take its CPU. */
  private fillUnlessBusy(): void {
    if (!this.opts.busy()) this.fill();
  }

  /** A recycled worker: a spare again if there is room for it (one started meanwhile may have taken its place). */
  private keepReturned(launch: WorkerLaunch): boolean {
    if (this.stopped || this.idle.length >= this.opts.count || !this.opts.fits(launch) || !launch.running) {
      launch.discard();
      return false;
    }
    this.keep(launch, false);
    return true;
  }

  private launchOne(): boolean {
    let launch: WorkerLaunch;
    try {
      launch = this.opts.launch();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      this.retryLater({ event: "spare_start_failed", code: e.code, reason: e.message });
      return false;
    }
    const child = launch.child;
    if (child.pid === undefined) {
      // The fork failed; its error comes on the next tick.
      child.once("error", (err: NodeJS.ErrnoException) => this.retryLater({ event: "spare_start_failed", code: err.code, reason: err.message }));
      launch.discard();
      return false;
    }
    let niced = false;
    if (this.renice) {
      try {
        os.setPriority(child.pid, Math.min(19, this.ownPriority + SPARE_NICENESS));
        niced = true;
      } catch {
        // Gone already: its exit is handled below.
      }
    }
    this.keep(launch, niced);
    return true;
  }

  private keep(launch: WorkerLaunch, niced: boolean): void {
    const child = launch.child;
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      const i = this.idle.findIndex((s) => s.launch === launch);
      if (i < 0) return;
      this.idle.splice(i, 1);
      launch.discard();
      this.retryLater({ event: "spare_exited", pid: child.pid, code, signal, recycled: launch.recycled });
    };
    child.once("exit", onExit);
    this.idle.push({ launch, niced, forgetExit: () => child.removeListener("exit", onExit) });
  }

  private retryLater(fields: Record<string, unknown>): void {
    if (this.stopped) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.failures++);
    this.opts.log.warn({ ...fields, retry_in_ms: delay });
    if (this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.fill();
    }, delay);
    this.retryTimer.unref();
  }

  /**
   * The oldest loaded spare, given the supervisor's priority back; undefined
   * when none is loaded. Only a loaded one: until it says "loaded" a spare has
   * no handler for the HUP or USR1 a `systemctl kill` sends the whole unit (Node
   * resets inherited signal dispositions as it starts, so nothing done here can
   * shield it), and a reload that HUP triggers must not adopt a spare the same
   * HUP is killing: it would fail (seen: "hand-over to worker failed: sendmsg:
   * Broken pipe"). A spare still loading stays for a later take; a worker
   * started now instead is past that signal. Spares that died or no longer fit
   * are discarded on the way, and so are those started at a lower priority
   * that cannot be given it back (no CAP_SYS_NICE): a worker must not serve
   * at a spare's priority.
   */
  take(): WorkerLaunch | undefined {
    for (let i = 0; i < this.idle.length; ) {
      const spare = this.idle[i]!;
      const { launch } = spare;
      const child = launch.child;
      const usable = launch.running && !launch.talkedOutOfTurn && this.opts.fits(launch);
      if (usable && !launch.loaded) {
        i++;
        continue;
      }
      this.idle.splice(i, 1);
      spare.forgetExit();
      if (!usable) {
        launch.discard();
        continue;
      }
      if (spare.niced && !this.restorePriority(child.pid!)) {
        launch.discard();
        continue;
      }
      this.failures = 0;
      this.opts.log.info({ event: "spare_adopted", pid: child.pid, age_ms: Date.now() - launch.launchedAt, recycled: launch.recycled });
      return launch;
    }
    return undefined;
  }

  /**
   * Every thread of the process (Node's own threads started at the spare's
   * priority too); false if the priority cannot be raised back, which only
   * CAP_SYS_NICE allows: from then on spares start at the supervisor's.
   */
  private restorePriority(pid: number): boolean {
    if (!this.renice) return false;
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      return true; // exited meanwhile: its adopter sees the exit
    }
    for (const tid of tids) {
      try {
        os.setPriority(Number(tid), this.ownPriority);
      } catch (err) {
        // os.setPriority throws a SystemError: code ERR_SYSTEM_ERROR, the errno's name in info.code.
        const code = (err as { info?: { code?: string } }).info?.code ?? (err as NodeJS.ErrnoException).code;
        if (code === "ESRCH") continue;
        this.renice = false;
        this.opts.log.warn({ event: "spare_priority_kept", pid, code, reason: "cannot raise a spare's CPU priority back; spares started at a lower one are discarded, and spares now start at the supervisor's priority" });
        return false;
      }
    }
    return true;
  }

  /**
   * Before a generation starts: resolves once `wanted` spares are loaded, or
   * when no spare still loading can make it so, or after `timeoutMs`. A spare
   * still loading is further along than a process started now, which would
   * only compete with it for the CPU; those waited for get the supervisor's
   * priority at once (a reload waits for them).
   */
  async loaded(wanted: number, timeoutMs: number): Promise<void> {
    const alive = this.idle.filter((s) => s.launch.running && !s.launch.talkedOutOfTurn);
    const missing = wanted - alive.filter((s) => s.launch.loaded).length;
    const loading = alive.filter((s) => !s.launch.loaded).slice(0, Math.max(0, missing));
    if (loading.length === 0) return;
    for (const s of loading) {
      if (s.niced && this.restorePriority(s.launch.pid!)) s.niced = false;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(loading.map((s) => s.launch.settled)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Each spare for /status: ready once its modules are loaded (a recycled one: once it has set itself back); how many generations it served. */
  list(): { pid: number; ready: boolean; launchedAt: string; recycled: number }[] {
    return this.idle.map(({ launch }) => ({ pid: launch.pid!, ready: launch.loaded, launchedAt: new Date(launch.launchedAt).toISOString(), recycled: launch.recycled }));
  }

  /** Kills every spare; none is started again. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const late of this.coming) clearTimeout(late);
    this.coming.clear();
    const spares = this.idle.splice(0);
    if (spares.length > 0) this.opts.log.info({ event: "spares_stopped", pids: spares.map((s) => s.launch.pid) });
    for (const spare of spares) {
      spare.forgetExit();
      spare.launch.discard();
    }
  }
}
