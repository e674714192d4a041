import type { Plan } from "../../config/plan.js";
import type { Logger } from "../../common/log.js";
import { SwitchyardError } from "../../common/errors.js";
import { Generation } from "./generation.js";
import type { ListenerProvider, PreparedListeners } from "../listeners/listener-provider.js";
import type { WorkerEvents, WorkerOptions, WorkerProcess } from "./worker-process.js";

/** How long a reload waits for new workers to confirm they accept, and old ones that they stopped. */
const ACCEPT_SWITCH_TIMEOUT_MS = 2000;

/** Beyond the workers' own start deadline: theirs fire first and name the worker. */
const GENERATION_GRACE_MS = 1000;

export interface PoolOptions {
  workers: number;
  maxDraining: number;
  /** Each worker's start deadline; the generation's is a little later, should one be missed. */
  startTimeoutMs: number;
  log: Logger;
  provider: ListenerProvider;
  spawn(opts: Pick<WorkerOptions, "generation" | "index" | "plan" | "listeners">, events: WorkerEvents): WorkerProcess;
  /** Awaited before a generation's workers are started (warm spares still loading: supervisor/workers/spare-workers.ts). */
  beforeGeneration?(workers: number): Promise<void>;
  /** Called for everything a worker reports beyond its lifecycle (metrics, access log). */
  observe: Pick<WorkerEvents, "onDrained" | "onMetrics" | "onClosed" | "onAccessLog">;
}

/**
 * The generations of workers, and the only place their state changes.
 * Invariant: at most one generation starting, at most one serving (current),
 * at most `maxDraining` draining. Reloads are serialised by the caller
 * (ReloadQueue); worker events arrive here one at a time on the event loop.
 */
export class Pool {
  current: Generation | undefined;
  starting: Generation | undefined;
  readonly draining: Generation[] = [];
  private nextNumber = 1;
  private stopping = false;

  /** stop() has begun: the workers drain, nothing new starts. */
  get isStopping(): boolean {
    return this.stopping;
  }
  private readonly startWaiters = new Map<Generation, { resolve(): void; reject(err: SwitchyardError): void }>();
  private exitWaiters: (() => void)[] = [];

  constructor(private readonly opts: PoolOptions) {}

  /** Generations go on from a previous supervisor's last (an upgrade, a restart with the fd store). */
  continueFrom(lastGeneration: number): void {
    this.nextNumber = Math.max(this.nextNumber, lastGeneration + 1);
  }

  /** The number of the last generation started, 0 before the first. */
  get lastNumber(): number {
    return this.nextNumber - 1;
  }

  /** Starts a generation for `plan`, gates it on health, cuts over. Rejects with nothing changed. */
  async deploy(plan: Plan): Promise<Generation> {
    if (this.stopping) throw new SwitchyardError("RELOAD_FAILED", "shutting down");
    await this.opts.beforeGeneration?.(this.opts.workers);
    if (this.stopping) throw new SwitchyardError("RELOAD_FAILED", "shutting down");
    const prepared = this.opts.provider.prepare(plan);
    const gen = new Generation(this.nextNumber++, plan, prepared, this.opts.workers);
    this.starting = gen;
    this.opts.log.info({ event: "generation_starting", generation: gen.number, workers: this.opts.workers, apps: plan.apps.length });
    const started = new Promise<void>((resolve, reject) => this.startWaiters.set(gen, { resolve, reject }));
    // Every way a worker can fail to start rejects `started`; this deadline only
    // guarantees that no reload waits forever, should one of them be missed.
    const deadline = setTimeout(() => {
      this.startWaiters.get(gen)?.reject(new SwitchyardError("WORKER_UNHEALTHY", `generation ${gen.number} did not become healthy within ${this.opts.startTimeoutMs + GENERATION_GRACE_MS} ms`));
    }, this.opts.startTimeoutMs + GENERATION_GRACE_MS);
    for (let i = 0; i < gen.slots.length; i++) this.spawnInto(gen, i, prepared);
    try {
      await started;
    } catch (err) {
      this.startWaiters.delete(gen);
      this.starting = undefined;
      prepared.rollback();
      this.opts.log.info({ event: "generation_abandoned", generation: gen.number });
      // None of its workers has accepted a connection (they only do at cut-over).
      for (const w of gen.workers()) w.abandon();
      this.drain(gen);
      throw err;
    } finally {
      clearTimeout(deadline);
    }
    this.startWaiters.delete(gen);
    const old = this.cutOver(gen);
    // The reload ends once the new workers accept and the old ones have let go of
    // the listeners: until then a reload that re-adds a dropped port would fail with
    // EADDRINUSE, and a client of a removed port could be queued, then reset.
    const [accepting, released] = await Promise.all([gen.startedAccepting(ACCEPT_SWITCH_TIMEOUT_MS), old?.stoppedAccepting(ACCEPT_SWITCH_TIMEOUT_MS) ?? true]);
    if (!accepting) this.opts.log.warn({ event: "serve_unconfirmed", generation: gen.number, timeout_ms: ACCEPT_SWITCH_TIMEOUT_MS });
    if (!released) this.opts.log.warn({ event: "drain_unconfirmed", generation: old!.number, timeout_ms: ACCEPT_SWITCH_TIMEOUT_MS });
    return gen;
  }

  /** Returns the generation it put to draining, if any. */
  private cutOver(gen: Generation): Generation | undefined {
    gen.prepared.commit();
    const old = this.current;
    this.starting = undefined;
    this.current = gen;
    gen.state = "serving";
    this.opts.log.info({ event: "generation_serving", generation: gen.number, startup_ms: Date.now() - gen.startedAt });
    // Old ones stop and new ones start accepting in the same tick: connections
    // arriving in between wait in the listening sockets' queues, which stay open.
    if (old) this.drain(old);
    for (const w of gen.workers()) w.serve();
    while (this.draining.length > this.opts.maxDraining) {
      const oldest = this.draining[0]!;
      this.opts.log.warn({ event: "generation_force_closed", generation: oldest.number, reason: "too many draining generations", limit: this.opts.maxDraining });
      for (const w of oldest.workers()) w.closeNow();
      this.forget(oldest);
    }
    return old;
  }

  private drain(gen: Generation): void {
    gen.state = "draining";
    gen.drainingSince = Date.now();
    gen.cancelRestarts();
    this.draining.push(gen);
    for (const w of gen.workers()) w.drain();
    this.opts.log.info({ event: "generation_draining", generation: gen.number });
    if (!gen.hasLiveWorkers()) this.forget(gen);
  }

  private forget(gen: Generation): void {
    gen.state = "stopped";
    const i = this.draining.indexOf(gen);
    if (i >= 0) this.draining.splice(i, 1);
    this.opts.log.info({ event: "generation_stopped", generation: gen.number });
    this.notifyIfAllExited();
  }

  private spawnInto(gen: Generation, index: number, prepared: PreparedListeners): void {
    let w: WorkerProcess;
    try {
      w = this.opts.spawn({ generation: gen.number, index, plan: gen.plan, listeners: prepared.listeners }, {
        onReady: (w) => this.onReady(gen, w),
        onStartFailed: (w, err) => this.onStartFailed(gen, w, err),
        onExit: (w, code, signal) => this.onExit(gen, w, code, signal),
        ...this.opts.observe,
      });
    } catch (err) {
      // No process (out of fds or memory: socketpair or fork failed): a reload
      // rolls back; a slot of the serving generation tries again after its backoff.
      const e = err as NodeJS.ErrnoException;
      if (gen.state === "starting") {
        this.startWaiters.get(gen)?.reject(new SwitchyardError("WORKER_START_FAILED", `generation ${gen.number}, worker ${index}: cannot start a worker: ${e.message}`, { cause: err }));
        return;
      }
      const slot = gen.slots[index]!;
      slot.worker = undefined;
      const delay = gen.restartDelay(index, 0);
      this.opts.log.error({ event: "worker_spawn_failed", generation: gen.number, worker: index, code: e.code, reason: e.message, restart_in_ms: delay });
      slot.restartTimer = setTimeout(() => {
        if (gen === this.current && !this.stopping && slot.worker === undefined) this.spawnInto(gen, index, gen.prepared);
      }, delay);
      return;
    }
    gen.slots[index]!.worker = w;
  }

  private onReady(gen: Generation, w: WorkerProcess): void {
    this.opts.log.info({ event: "worker_ready", generation: gen.number, worker: w.index, pid: w.pid, startup_ms: Date.now() - w.startedAt });
    if (gen.state === "starting" && gen.allServing()) this.startWaiters.get(gen)?.resolve();
    // A replacement in the generation that already serves: straight to work.
    if (gen.state === "serving" && !this.stopping) w.serve();
    if (gen.state === "draining" || gen.state === "stopped") w.drain();
  }

  private onStartFailed(gen: Generation, w: WorkerProcess, err: SwitchyardError): void {
    this.opts.log.error({ event: "worker_start_failed", generation: gen.number, worker: w.index, pid: w.pid, code: err.code, reason: err.message });
    if (gen.state === "starting") this.startWaiters.get(gen)?.reject(new SwitchyardError("WORKER_UNHEALTHY", `generation ${gen.number}, worker ${w.index}: ${err.message}`, { cause: err }));
  }

  private onExit(gen: Generation, w: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const slot = gen.slots[w.index]!;
    const inSlot = slot.worker === w;
    if (gen === this.current && inSlot && !this.stopping) {
      const served = Date.now() - w.startedAt;
      const delay = gen.restartDelay(w.index, served);
      this.opts.log.error({ event: "worker_died", generation: gen.number, worker: w.index, pid: w.pid, code, signal, restart_in_ms: delay });
      slot.restartTimer = setTimeout(() => {
        if (gen === this.current && !this.stopping && slot.worker === w) this.spawnInto(gen, w.index, gen.prepared);
      }, delay);
      return;
    }
    if (w.recycled) this.opts.log.info({ event: "worker_recycled", generation: gen.number, worker: w.index, pid: w.pid });
    else this.opts.log.info({ event: "worker_exited", generation: gen.number, worker: w.index, pid: w.pid, code, signal });
    // A worker that passed its health check and died before its whole generation
    // did: the generation cannot serve as planned, so the reload rolls back.
    if (gen.state === "starting" && inSlot) {
      const how = signal ? `signal ${signal}` : `code ${code}`;
      this.startWaiters.get(gen)?.reject(new SwitchyardError("WORKER_UNHEALTHY", `generation ${gen.number}, worker ${w.index}: worker exited (${how}) before its generation served`));
    }
    if (inSlot && gen.state !== "serving") slot.worker = undefined;
    if ((gen.state === "draining" || (this.stopping && gen === this.current)) && !gen.hasLiveWorkers()) {
      if (gen === this.current) this.notifyIfAllExited();
      else this.forget(gen);
    }
    this.notifyIfAllExited();
  }

  /** Every worker of the current generation answers /healthz. */
  healthy(): boolean {
    return !this.stopping && this.current !== undefined && this.current.allServing();
  }

  generations(): Generation[] {
    return [this.starting, this.current, ...this.draining].filter((g): g is Generation => g !== undefined);
  }

  liveWorkers(): WorkerProcess[] {
    return this.generations().flatMap((g) => g.workers()).filter((w) => w.state !== "exited");
  }

  /**
   * Drains everything; resolves once every worker has exited. `release`:
   * another process holds the sockets now (a successor, systemd's fd store),
   * so they are let go of, not closed for everyone (BPF: the link stays attached).
   */
  stop(release = false): Promise<void> {
    this.stopping = true;
    for (const [gen, waiter] of this.startWaiters) waiter.reject(new SwitchyardError("RELOAD_FAILED", `generation ${gen.number} abandoned: shutting down`));
    for (const g of this.generations()) {
      g.cancelRestarts();
      for (const w of g.workers()) {
        w.withdrawRecycle();
        w.drain();
      }
    }
    if (release) this.opts.provider.release();
    else this.opts.provider.closeAll();
    return new Promise((resolve) => {
      this.exitWaiters.push(resolve);
      this.notifyIfAllExited();
    });
  }

  private notifyIfAllExited(): void {
    if (!this.stopping || this.liveWorkers().length > 0) return;
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of waiters) w();
  }
}
