import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { MetricFamily } from "../../common/messages.js";
import type { Pool } from "../workers/pool.js";
import type { WorkerProcess } from "../workers/worker-process.js";

export type Snapshot = MetricObjectWithValues<MetricValue<string>>[];

/** A worker's families are prom-client's JSON; its typings declare `type` as an enum where the JSON has strings. */
const asSnapshot = (families: MetricFamily[]): Snapshot => families as unknown as Snapshot;

const SCRAPE_TIMEOUT_MS = 1000;

/** prom-client gauges whose "_total" suffix promtool rejects; their per-type siblings stay. */
const LINT_FAILING_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

interface Tracked {
  /** The newest snapshot the worker sent, and the request it answered. */
  last: Snapshot | undefined;
  lastSeq: number;
  /** Scrapes waiting on this worker: called with the seq of a reply, or Infinity once it is retired. */
  waiters: Set<(seq: number) => void>;
}

/**
 * /metrics: the supervisor's own metrics plus the sum over workers.
 *
 * Every worker is tracked from spawn until it is retired, which happens
 * exactly once: on its "drained" message (final counters), or when its
 * process has exited and its IPC channel is closed (`onClosed`: no message
 * can follow; counters are the last snapshot seen: a crash loses at most
 * what it counted since the previous scrape, never counts it twice).
 * Retired counters move into `retired` in the same synchronous step that
 * stops the worker from being asked, so no scrape counts a worker both live
 * and retired, or neither. A reply that arrives after retirement is dropped.
 */
export class SupervisorMetrics {
  readonly registry = new Registry();
  readonly reloads = new Counter({ name: "switchyard_reloads_total", help: "Reloads by result", labelNames: ["result"], registers: [this.registry] });
  /** Counted by the supervisor's one prober (supervisor/health/): never per worker. */
  readonly healthChecks = new Counter({ name: "switchyard_health_checks_total", help: "Active health checks of targets, by result", labelNames: ["app", "target", "result"], registers: [this.registry] });
  readonly reloadDuration = new Histogram({ name: "switchyard_reload_duration_seconds", help: "From trigger to cut-over or rollback", buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  private retired: Snapshot = [];
  /** What a previous supervisor had counted, itself and its workers (an upgrade): added to every total. */
  private predecessor: Snapshot = [];
  private readonly tracked = new Map<WorkerProcess, Tracked>();
  private seq = 0;

  constructor(private readonly pool: Pool, steered: () => Map<string, number> | undefined, accessLogDropped: () => number) {
    this.reloads.inc({ result: "success" }, 0);
    this.reloads.inc({ result: "failure" }, 0);
    // The event-loop lag is sampled every 10 ms by default: 100 wake-ups a second of an
    // otherwise idle supervisor (about 1% of a core) for a figure that means something at 100 ms.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);
    const poolRef = pool;
    new Gauge({
      name: "switchyard_workers",
      help: "Worker processes by the state of their generation",
      labelNames: ["generation_state"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const state of ["starting", "serving", "draining"] as const) this.set({ generation_state: state }, 0);
        for (const g of poolRef.generations()) {
          if (g.state === "stopped") continue;
          this.inc({ generation_state: g.state }, g.workers().filter((w) => w.state !== "exited").length);
        }
      },
    });
    new Counter({
      name: "switchyard_access_log_dropped_lines_total",
      help: "Access-log lines dropped because the destination did not keep up",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(accessLogDropped());
      },
    });
    new Counter({
      name: "switchyard_steered_connections_total",
      help: "Connections the BPF program steered to an app's socket (BPF mode only)",
      labelNames: ["app"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [app, n] of steered() ?? []) this.inc({ app }, n);
      },
    });
  }

  /** Starts counting a worker; call at spawn, before it can send anything. */
  track(w: WorkerProcess): WorkerProcess {
    this.tracked.set(w, { last: undefined, lastSeq: 0, waiters: new Set() });
    return w;
  }

  /**
   * A fresh snapshot of every tracked worker (the last one seen where a
   * worker does not answer in time). Retired workers are absent.
   */
  async workerSnapshots(): Promise<Map<WorkerProcess, Snapshot>> {
    const seq = ++this.seq;
    await Promise.all([...this.tracked].map(([w, t]) => this.ask(w, t, seq)));
    // Synchronous from here to the caller's use of `retired` (see render).
    const out = new Map<WorkerProcess, Snapshot>();
    for (const [w, t] of this.tracked) if (t.last) out.set(w, t.last);
    return out;
  }

  private ask(w: WorkerProcess, t: Tracked, seq: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        t.waiters.delete(answered);
        resolve();
      };
      const answered = (replySeq: number) => {
        if (replySeq >= seq) done();
      };
      const timer = setTimeout(done, SCRAPE_TIMEOUT_MS);
      t.waiters.add(answered);
      // A starting worker may not have its metrics yet and would not answer;
      // an exited one cannot: wait for its retirement instead (bounded).
      if (w.state === "serving" || w.state === "draining") w.requestMetrics(seq);
      else if (w.state === "starting") done();
    });
  }

  /**
   * What of a worker's families may be summed: named switchyard_*, not one of
   * the supervisor's own (merging would throw on every scrape), and of the type
   * first seen under that name. The shapes are checked on arrival; this keeps
   * a broken worker from breaking /metrics for good through `retired`.
   */
  private admissible(families: MetricFamily[]): MetricFamily[] {
    return families.filter((f) => {
      if (!f.name.startsWith("switchyard_") || this.registry.getSingleMetric(f.name) !== undefined) return false;
      const type = this.familyTypes.get(f.name);
      if (type === undefined) this.familyTypes.set(f.name, f.type);
      return type === undefined || type === f.type;
    });
  }

  private readonly familyTypes = new Map<string, MetricFamily["type"]>();

  onWorkerMetrics(w: WorkerProcess, seq: number, metrics: MetricFamily[]): void {
    const t = this.tracked.get(w);
    if (!t || seq < t.lastSeq) return;
    t.last = asSnapshot(this.admissible(metrics));
    t.lastSeq = seq;
    for (const f of [...t.waiters]) f(seq);
  }

  /** The worker's final counters (drained), or the last ones seen (`final` undefined: it is gone). */
  retire(w: WorkerProcess, final?: MetricFamily[]): void {
    const t = this.tracked.get(w);
    if (!t) return;
    this.tracked.delete(w);
    const snapshot = final ? asSnapshot(this.admissible(final)) : t.last;
    if (snapshot) {
      // Gauges describe the present; a gone worker contributes none.
      const counters = snapshot.filter((m) => String(m.type) === "counter" || String(m.type) === "histogram");
      this.retired = aggregateNow([this.retired, counters]);
    }
    for (const f of [...t.waiters]) f(Infinity);
  }

  /**
   * Every total counted so far, by this supervisor and all its workers, for a
   * successor to go on from (an upgrade): counters and histograms of
   * switchyard_* only (process_* describe a process, not the service).
   */
  async totals(): Promise<Snapshot> {
    const snapshots = await this.workerSnapshots();
    const own = (await this.registry.getMetricsAsJSON()).filter((m) => m.name.startsWith("switchyard_")) as Snapshot;
    return totalsOf(aggregateNow([this.retired, this.predecessor, ...snapshots.values(), own]));
  }

  /**
   * A predecessor's totals (an upgrade), its own and its workers', added to
   * every total from here on; called again as its workers drain and count on,
   * each time with all it has counted (replacing what it sent before).
   */
  inherit(totals: Snapshot): void {
    this.predecessor = totalsOf(totals).filter((f) => !CARRIED_ON_BY_THE_KERNEL.has(f.name));
  }

  async render(): Promise<{ contentType: string; body: string }> {
    const snapshots = await this.workerSnapshots();
    // The predecessor's counts of a family this supervisor registers itself are summed with
    // that family's own values; the rest go with the workers' families.
    const ownNames = new Set(this.registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name));
    const carried = this.predecessor.filter((f) => ownNames.has(f.name));
    const workers = AggregatorRegistry.aggregate([this.retired, this.predecessor.filter((f) => !ownNames.has(f.name)), ...snapshots.values()]);
    if (carried.length === 0) {
      const merged = Registry.merge([workers as Registry, this.registry]);
      return { contentType: merged.contentType, body: await merged.metrics() };
    }
    const carriedNames = new Set(carried.map((f) => f.name));
    const ownCarried = ((await this.registry.getMetricsAsJSON()) as Snapshot).filter((f) => carriedNames.has(f.name));
    const continued = AggregatorRegistry.aggregate([ownCarried, carried]);
    const rest = new Registry();
    for (const m of this.registry.getMetricsAsArray()) if (!carriedNames.has((m as unknown as { name: string }).name)) rest.registerMetric(m as unknown as Parameters<Registry["registerMetric"]>[0]);
    const merged = Registry.merge([workers as Registry, continued as Registry, rest]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }
}

/** Counted where every supervisor reads it (the BPF counters map): a successor's own reading already holds the predecessor's. */
const CARRIED_ON_BY_THE_KERNEL = new Set(["switchyard_steered_connections_total"]);

/** Only what adds up over time: counters and histograms. */
function totalsOf(snapshot: Snapshot): Snapshot {
  return snapshot.filter((m) => String(m.type) === "counter" || String(m.type) === "histogram");
}

/** prom-client's aggregation, read back synchronously (its registry only wraps plain values). */
function aggregateNow(snapshots: Snapshot[]): Snapshot {
  const registry = AggregatorRegistry.aggregate(snapshots);
  return registry.getMetricsAsArray().map((m) => (m as unknown as { get(): Snapshot[number] }).get());
}
