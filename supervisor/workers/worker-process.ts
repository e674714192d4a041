import type { ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import type { Plan } from "../../config/plan.js";
import type { Logger } from "../../common/log.js";
import { SwitchyardError } from "../../common/errors.js";
import { dispatch, type DataPath, isFromWorker, type FromWorker, type Handlers, type ListenerSpec, type MetricFamily, type TargetState, type ToWorker } from "../../common/messages.js";
import type { Channel } from "../../common/channel.js";
import { socketInode } from "../../native/index.js";
import type { WorkerLaunch } from "./worker-launch.js";
import type { SpareReservation } from "./spare-workers.js";
import { sendListeners } from "./handoff.js";
import { HealthProbe } from "./health-probe.js";
import { LIVENESS_INTERVAL_MS, Liveness } from "./liveness.js";

/** How long a worker told to close its connections now may take to report and exit. */
const CLOSE_NOW_GRACE_MS = 2000;

export interface WorkerOptions {
  generation: number;
  index: number;
  plan: Plan;
  listeners: readonly { spec: ListenerSpec; fd: number }[];
  credentials?: { uid: number; gid: number };
  drainTimeoutMs: number;
  startTimeoutMs: number;
  /** --max-connections, per worker; null: no limit. */
  maxConnections: number | null;
  /** --overload-lag; null: no shedding. */
  overloadLagMs: number | null;
  dataPath: DataPath;
  /** This worker's row in the shared counters (their memfd is the launch's) and its apps' slots (MaxConnections); null: none. */
  counters: { row: number; slots: Record<string, number> } | null;
  /** The checked targets' states now, sent with "start" (supervisor/health/). */
  targetStates: readonly TargetState[];
  /**
   * Asked as it is told to drain: a place among the spares if one is wanted,
   * which a worker whose drain ends with nothing cut takes (supervisor/workers/spare-workers.ts).
   */
  recycle(launch: WorkerLaunch): SpareReservation | undefined;
  log: Logger;
}

export interface WorkerEvents {
  /** Hand-over acknowledged and the health check answered "serving". */
  onReady(w: WorkerProcess): void;
  /** Could not start (hand-over, health, timeout); the process is being killed. */
  onStartFailed(w: WorkerProcess, err: SwitchyardError): void;
  onExit(w: WorkerProcess, code: number | null, signal: NodeJS.Signals | null): void;
  onDrained(w: WorkerProcess, final: { connections: number; metrics: MetricFamily[] }): void;
  onMetrics(w: WorkerProcess, seq: number, metrics: MetricFamily[]): void;
  /** Exited (or recycled) and its IPC channel closed to it: no message from it can follow. */
  onClosed(w: WorkerProcess): void;
  /** The worker's access-log pipe, for the supervisor to forward. */
  onAccessLog(w: WorkerProcess, stream: Readable): void;
}

/** "exited": its process is gone, or has become a spare again (`recycled`): either way it is no worker of its generation any more. */
export type WorkerState = "starting" | "serving" | "draining" | "exited";

/** One worker child process: spawn, fd hand-over with acknowledgement, health gate, drain. */
export class WorkerProcess {
  state: WorkerState = "starting";
  readonly generation: number;
  readonly index: number;
  /** Its row in the shared connection counters, settled by the supervisor once it has exited. */
  readonly counterRow: number | undefined;
  readonly startedAt = Date.now();
  private readonly child: ChildProcess;
  private readonly channel: Channel;
  private exited = false;
  /** Its process outlived it as a spare: drained with nothing cut, and a spare was wanted. */
  recycled = false;
  /** Its place among the spares, taken as it was told to drain; given up if it exits instead. */
  private reservation: SpareReservation | undefined;
  /** Told to drain for the spares, then to exit after all (a stop): a recycled answer already on its way is no breach. */
  private recycleWithdrawn = false;
  private readonly onChildExit = (code: number | null, signal: NodeJS.Signals | null): void => this.onExit(code, signal);
  private readonly onChildError = (err: Error): void => {
    this.opts.log.warn({ event: "worker_process_error", generation: this.generation, worker: this.index, err });
    // The process never started: this is its end.
    if (this.child.pid === undefined) this.onExit(null, null);
  };
  /** Apps whose targets its plan has checked (a HealthCheck): the only target states it is sent. */
  private readonly checkedApps: ReadonlySet<string>;
  /** What this worker was asked and has answered, to tell an answer from an out-of-order message. */
  private readonly protocol = { started: false, serveSent: false, served: false, drained: false, healthSeq: 0, metricsSeq: 0 };
  private killTimer: NodeJS.Timeout | undefined;
  private startTimer: NodeJS.Timeout | undefined;
  private readonly health = new HealthProbe((seq) => {
    this.protocol.healthSeq = seq;
    return this.send({ type: "health-check", seq });
  });
  private readonly liveness = new Liveness(this.health, (missedChecks) => {
    this.opts.log.error({ event: "worker_unresponsive", generation: this.generation, worker: this.index, pid: this.pid, missed_checks: missedChecks, interval_ms: LIVENESS_INTERVAL_MS });
    this.kill("SIGKILL");
  });
  private markStartedAccepting!: () => void;
  /** Resolves once the worker accepts on its listeners (acknowledged "serve") or has exited. */
  readonly startedAccepting = new Promise<void>((resolve) => (this.markStartedAccepting = resolve));
  private markStoppedAccepting!: () => void;
  /** Resolves once the worker has closed its copies of the listeners (acknowledged "drain") or exited. */
  readonly stoppedAccepting = new Promise<void>((resolve) => (this.markStoppedAccepting = resolve));

  constructor(private readonly opts: WorkerOptions, private readonly events: WorkerEvents, private readonly launch: WorkerLaunch) {
    this.generation = opts.generation;
    this.index = opts.index;
    this.counterRow = opts.counters?.row;
    this.checkedApps = new Set(opts.plan.apps.filter((a) => a.healthCheck !== null).map((a) => a.name));
    // Its process was started before (a warm spare) or just now; from here its fds are ours to close.
    this.channel = launch.adopt({
      message: (raw) => this.onMessage(raw),
      invalid: (reason, preview) => this.protocolError(reason, preview),
      close: () => this.channelClosed(),
    });
    this.child = launch.child;
    this.child.on("exit", this.onChildExit);
    this.child.on("error", this.onChildError);
    const accessLog = launch.takeAccessLog();
    if (accessLog) events.onAccessLog(this, accessLog);
    this.startTimer = setTimeout(() => this.failStart(new SwitchyardError("WORKER_START_FAILED", `worker did not become healthy within ${opts.startTimeoutMs} ms`)), opts.startTimeoutMs);
    void this.handOver();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private async handOver(): Promise<void> {
    const { opts } = this;
    this.send({
      type: "start",
      id: { generation: opts.generation, worker: opts.index },
      plan: opts.plan,
      listeners: opts.listeners.map((l) => l.spec),
      credentials: opts.credentials,
      maxConnections: opts.maxConnections,
      overloadLagMs: opts.overloadLagMs,
      dataPath: opts.dataPath,
      counters: opts.counters ? { row: opts.counters.row, slots: opts.counters.slots } : null,
      targetStates: this.ofMyPlan(opts.targetStates),
    });
    try {
      await sendListeners(this.launch.handoffFd, opts.listeners.map((l) => ({ key: l.spec.key, fd: l.fd })), this.startedAt + opts.startTimeoutMs);
    } catch (err) {
      this.failStart(err as SwitchyardError);
    }
  }

  private readonly handlers: Handlers<FromWorker> = {
    // Sent once after its imports; a spare's came before adoption (worker-launch.ts).
    loaded: () => undefined,
    started: (msg) => {
      if (this.protocol.started) return this.protocolError("a second \"started\"", msg);
      this.protocol.started = true;
      // Abandoned meanwhile (rollback, shutdown): its listeners may be closed already.
      if (this.state !== "starting") return;
      const expected = this.opts.listeners.map((l) => socketInode(l.fd));
      if (msg.inodes.length !== expected.length || msg.inodes.some((ino, i) => ino !== expected[i])) {
        this.failStart(new SwitchyardError("HANDOFF_FAILED", `worker acknowledged sockets ${msg.inodes.join(",")}, expected ${expected.join(",")}`));
        return;
      }
      void this.gateOnHealth();
    },
    "start-failed": (msg) => {
      if (this.protocol.started) return this.protocolError("\"start-failed\" after \"started\"", msg);
      this.failStart(new SwitchyardError("WORKER_START_FAILED", `worker failed to start: ${msg.code}: ${msg.message}`));
    },
    health: (msg) => {
      if (msg.seq > this.protocol.healthSeq) return this.protocolError("an answer to a health check never sent", msg);
      this.health.answer(msg.seq, msg.serving);
    },
    serving: (msg) => {
      if (!this.protocol.serveSent || this.protocol.served) return this.protocolError("\"serving\" without \"serve\"", msg);
      this.protocol.served = true;
      this.markStartedAccepting();
    },
    // A worker may drain unasked: a TERM sent to the whole cgroup, its channel closing.
    // It stops answering "serving", which liveness must not take for a hang.
    draining: () => {
      this.liveness.stop();
      this.markStoppedAccepting();
    },
    drained: (msg) => {
      if (this.protocol.drained) return this.protocolError("a second \"drained\"", msg);
      // Exited already (its exit event came before this, its last message): its reservation is given up, the counts still count.
      if (msg.recycled && this.reservation === undefined && !this.exited && !this.recycleWithdrawn) return this.protocolError("recycled unasked", msg);
      this.protocol.drained = true;
      this.events.onDrained(this, msg);
      if (msg.recycled && !this.exited) this.becomeSpare();
    },
    metrics: (msg) => {
      if (msg.seq > this.protocol.metricsSeq) return this.protocolError("metrics never asked for", msg);
      this.events.onMetrics(this, msg.seq, msg.metrics);
    },
  };

  private onMessage(raw: unknown): void {
    if (this.protocolBroken) return;
    if (!isFromWorker(raw)) return this.protocolError("an unknown or malformed message", raw);
    dispatch(this.handlers, raw);
  }

  private protocolBroken = false;

  /**
   * A worker that breaks the protocol cannot be trusted with its sockets: it
   * is killed and, like one that crashed, replaced (or, while starting, its
   * generation rolled back). Nothing more it sends is read.
   */
  private protocolError(reason: string, message: unknown): void {
    if (this.protocolBroken) return;
    this.protocolBroken = true;
    this.opts.log.error({ event: "worker_protocol_error", generation: this.generation, worker: this.index, pid: this.pid, reason, message: typeof message === "string" ? message : preview(message) });
    if (this.state === "starting") this.failStart(new SwitchyardError("WORKER_START_FAILED", `worker broke the protocol: ${reason}`));
    else this.kill("SIGKILL");
  }

  private async gateOnHealth(): Promise<void> {
    const deadline = this.startedAt + this.opts.startTimeoutMs;
    let delay = 5;
    while (this.state === "starting" && Date.now() < deadline) {
      const answer = await this.health.check(Math.min(1000, Math.max(1, deadline - Date.now())));
      if (this.state !== "starting") return;
      if (answer === "serving") {
        clearTimeout(this.startTimer);
        this.state = "serving";
        this.liveness.start();
        this.events.onReady(this);
        return;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 200);
    }
    // The start timer reports the failure.
  }

  private failStart(err: SwitchyardError): void {
    if (this.state !== "starting") return;
    this.abandon();
    this.events.onStartFailed(this, err);
  }

  /** Stops a worker that will not serve: it never accepted, so it holds no client. */
  abandon(): void {
    if (this.state === "exited" || this.state === "draining") return;
    clearTimeout(this.startTimer);
    this.liveness.stop();
    this.state = "draining";
    this.kill("SIGKILL");
  }

  /** Cut-over: the worker starts accepting. Only for a worker that is ready ("serving" state). */
  serve(): void {
    if (this.state !== "serving" || this.protocol.serveSent) return;
    this.protocol.serveSent = true;
    this.send({ type: "serve" });
  }

  drain(): void {
    if (this.state === "exited" || this.state === "draining") return;
    clearTimeout(this.startTimer);
    this.liveness.stop();
    this.state = "draining";
    // Only one that served: a worker drained while starting or before its "serving" never listened on some of its sockets.
    this.reservation = this.protocolBroken || !this.protocol.served ? undefined : this.opts.recycle(this.launch);
    this.send({ type: "drain", timeoutMs: this.opts.drainTimeoutMs, recycle: this.reservation !== undefined });
    // The worker exits by the drain deadline itself; this is for one that cannot.
    this.killTimer = setTimeout(() => this.kill("SIGKILL"), this.opts.drainTimeoutMs + 2000);
  }

  /**
   * A stop or an upgrade: a worker told to drain for the spares exits at the
   * end of its drain after all, as every other worker does then.
   */
  withdrawRecycle(): void {
    if (this.reservation === undefined || this.state !== "draining") return;
    this.reservation.lost();
    this.reservation = undefined;
    this.recycleWithdrawn = true;
    this.send({ type: "drain", timeoutMs: this.opts.drainTimeoutMs, recycle: false });
  }

  /**
   * Ends a draining worker's connections now (too many generations drain): it
   * still reports its final counts and access-log lines, then exits; killed
   * only if it cannot.
   */
  closeNow(): void {
    if (this.state === "exited") return;
    this.drain();
    this.send({ type: "drain", timeoutMs: 0, recycle: false });
    clearTimeout(this.killTimer);
    this.killTimer = setTimeout(() => this.kill("SIGKILL"), CLOSE_NOW_GRACE_MS);
  }

  requestMetrics(seq: number): boolean {
    if (this.state === "exited" || this.protocolBroken) return false;
    this.protocol.metricsSeq = Math.max(this.protocol.metricsSeq, seq);
    return this.send({ type: "metrics-request", seq });
  }

  /** Passes on check results that changed; those of apps its plan does not check are left out. */
  sendTargetStates(states: readonly TargetState[]): void {
    if (this.state === "exited" || this.protocolBroken) return;
    const mine = this.ofMyPlan(states);
    if (mine.length > 0) this.send({ type: "target-states", states: mine });
  }

  /**
   * Only states of apps this worker's plan checks: the prober follows the serving
   * plan, and a worker of a newer one whose app dropped its HealthCheck must not
   * hold a "down" that no check will ever lift.
   */
  private ofMyPlan(states: readonly TargetState[]): TargetState[] {
    return states.filter((s) => this.checkedApps.has(s.app));
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  private send(msg: ToWorker): boolean {
    return this.channel.send(msg);
  }

  /** The worker's end of the channel is closed: it has exited, or is about to. */
  private channelClosed(): void {
    if (this.exited) this.events.onClosed(this);
  }

  /**
   * Its generation is done with it and its process is a spare again: for the
   * pool and the supervisor it has exited (its row, metrics and slot are
   * settled as for one that exited), and its process, channel and fds go back
   * to the launch, whose "loaded" comes next, and from there to the spares.
   */
  private becomeSpare(): void {
    this.settle();
    this.child.removeListener("exit", this.onChildExit);
    this.child.removeListener("error", this.onChildError);
    this.launch.reclaim();
    const reservation = this.reservation;
    this.reservation = undefined;
    // Withdrawn meanwhile (a stop), or no longer wanted: a spare no one keeps; it holds nothing.
    if (reservation) this.recycled = reservation.returned(this.launch);
    else this.launch.discard();
    this.events.onExit(this, null, null);
    this.events.onClosed(this);
  }

  /** No longer a worker of its generation (exited, or a spare again): nothing more is awaited of it. */
  private settle(): void {
    this.exited = true;
    this.state = "exited";
    this.liveness.stop();
    this.markStartedAccepting();
    this.markStoppedAccepting();
    clearTimeout(this.startTimer);
    clearTimeout(this.killTimer);
    this.health.cancel();
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    const wasStarting = this.state === "starting";
    this.settle();
    this.launch.closeHandoff();
    this.reservation?.lost();
    this.reservation = undefined;
    if (wasStarting) this.events.onStartFailed(this, new SwitchyardError("WORKER_START_FAILED", `worker exited while starting (code ${code}, signal ${signal})`));
    this.events.onExit(this, code, signal);
    // Messages still in the channel are delivered before it reports closed.
    if (this.channel.connected) this.channel.close();
    else this.events.onClosed(this);
  }
}

/** At most this much of a message that broke the protocol goes into the log line. */
const PREVIEW_CHARS = 200;

function preview(raw: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(raw) ?? String(raw);
  } catch {
    text = String(raw);
  }
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}... (${text.length} chars)` : text;
}
