import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { Pool } from "./pool.js";
import type { WorkerProcess } from "./worker-process.js";

type Snapshot = MetricObjectWithValues<MetricValue<string>>[];

const SCRAPE_TIMEOUT_MS = 1000;

/**
 * /metrics: the supervisor's own metrics plus the sum over workers. A worker
 * that exits leaves its counters behind (its final report, or the last one we
 * saw if it crashed) in `retired`, so totals never go backwards or double.
 */
export class SupervisorMetrics {
  readonly registry = new Registry();
  readonly reloads = new Counter({ name: "switchyard_reloads_total", help: "Reloads by result", labelNames: ["result"], registers: [this.registry] });
  readonly reloadDuration = new Histogram({ name: "switchyard_reload_duration_seconds", help: "From trigger to cut-over or rollback", buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  private retired: Promise<Snapshot> = Promise.resolve([]);
  private readonly lastSeen = new Map<WorkerProcess, Snapshot>();
  private readonly finished = new WeakSet<WorkerProcess>();
  private seq = 0;
  private readonly waiting = new Map<number, Map<WorkerProcess, (s: Snapshot | undefined) => void>>();

  constructor(private readonly pool: Pool, steered: () => Map<string, number> | undefined) {
    this.reloads.inc({ result: "success" }, 0);
    this.reloads.inc({ result: "failure" }, 0);
    collectDefaultMetrics({ register: this.registry });
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

  /** Every live worker's snapshot, keyed by worker. */
  async workerSnapshots(): Promise<Map<WorkerProcess, Snapshot>> {
    const seq = ++this.seq;
    const pending = new Map<WorkerProcess, (s: Snapshot | undefined) => void>();
    this.waiting.set(seq, pending);
    const results = await Promise.all(
      this.pool.liveWorkers().map(
        (w) =>
          new Promise<[WorkerProcess, Snapshot | undefined]>((resolve) => {
            const timer = setTimeout(() => done(undefined), SCRAPE_TIMEOUT_MS);
            const done = (s: Snapshot | undefined) => {
              clearTimeout(timer);
              pending.delete(w);
              resolve([w, s]);
            };
            pending.set(w, done);
            if (!w.requestMetrics(seq)) done(undefined);
          }),
      ),
    );
    this.waiting.delete(seq);
    const out = new Map<WorkerProcess, Snapshot>();
    for (const [w, s] of results) {
      // A reply that raced with the worker's final report is already in `retired`.
      if (s && !this.finished.has(w)) {
        out.set(w, s);
        this.lastSeen.set(w, s);
      }
    }
    return out;
  }

  onWorkerMetrics(w: WorkerProcess, seq: number, metrics: unknown): void {
    this.waiting.get(seq)?.get(w)?.(metrics as Snapshot);
  }

  /** The worker's final counters (drained), or the last ones we saw (crash). */
  retire(w: WorkerProcess, final: unknown): void {
    if (this.finished.has(w)) return;
    this.finished.add(w);
    const snapshot = (final as Snapshot | undefined) ?? this.lastSeen.get(w);
    this.lastSeen.delete(w);
    if (!snapshot) return;
    // Gauges describe the present; a gone worker contributes none.
    const counters = snapshot.filter((m) => String(m.type) === "counter" || String(m.type) === "histogram");
    this.retired = this.retired.then((sum) => AggregatorRegistry.aggregate([sum, counters]).getMetricsAsJSON() as Promise<Snapshot>);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    const snapshots = await this.workerSnapshots();
    const workers = AggregatorRegistry.aggregate([await this.retired, ...snapshots.values()]);
    const merged = Registry.merge([workers as Registry, this.registry]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }
}
