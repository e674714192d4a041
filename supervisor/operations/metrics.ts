import type { MetricFamily } from "../../common/messages.js";
import type { Pool } from "../workers/pool.js";
import type { WorkerProcess } from "../workers/worker-process.js";
import { aggregate } from "./prom/aggregate.js";
import type { Family } from "./prom/family.js";
import { Counter, Gauge, Histogram } from "./prom/instruments.js";
import { registerProcessMetrics } from "./prom/process-metrics.js";
import { Registry } from "./prom/registry.js";
import { registerRuntimeMetrics } from "./prom/runtime-metrics.js";
import { CONTENT_TYPE, renderText } from "./prom/text.js";

/** Families in prom-client's JSON shape (prom/family.ts): what workers send and a predecessor hands over. */
export type Snapshot = Family[];

const SCRAPE_TIMEOUT_MS = 1000;

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
  /** In the order /metrics lists them (after the workers' families), as when prom-client kept them. */
  readonly registry = new Registry();
  readonly reloads = this.registry.add(new Counter({ name: "switchyard_reloads_total", help: "Reloads by result", labelNames: ["result"] }));
  /** Counted by the supervisor's one prober (supervisor/health/): never per worker. */
  readonly healthChecks = this.registry.add(new Counter({ name: "switchyard_health_checks_total", help: "Active health checks of targets, by result", labelNames: ["app", "target", "result"] }));
  readonly reloadDuration = this.registry.add(new Histogram({ name: "switchyard_reload_duration_seconds", help: "From trigger to cut-over or rollback", buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] }));
  private retired: Snapshot = [];
  /** What a previous supervisor had counted, itself and its workers (an upgrade): added to every total. */
  private predecessor: Snapshot = [];
  private readonly tracked = new Map<WorkerProcess, Tracked>();
  private seq = 0;

  constructor(private readonly pool: Pool, steered: () => Map<string, number> | undefined, accessLogDropped: () => number) {
    this.reloads.inc({ result: "success" }, 0);
    this.reloads.inc({ result: "failure" }, 0);
    // The event-loop delay sampled every 100 ms, not prom-client's default 10 ms: 100 wake-ups a second
    // of an otherwise idle supervisor (about 1% of a core) for a figure that means something at 100 ms.
    registerProcessMetrics(this.registry);
    registerRuntimeMetrics(this.registry, { eventLoopResolutionMs: 100 });
    this.registry.add(
      new Gauge({
        name: "switchyard_workers",
        help: "Worker processes by the state of their generation",
        labelNames: ["generation_state"],
        collect(g) {
          g.reset();
          for (const state of ["starting", "serving", "draining"] as const) g.set({ generation_state: state }, 0);
          for (const gen of pool.generations()) {
            if (gen.state === "stopped") continue;
            g.inc({ generation_state: gen.state }, gen.workers().filter((w) => w.state !== "exited").length);
          }
        },
      }),
    );
    this.registry.add(
      new Counter({
        name: "switchyard_access_log_dropped_lines_total",
        help: "Access-log lines dropped because the destination did not keep up",
        collect(c) {
          c.reset();
          c.inc({}, accessLogDropped());
        },
      }),
    );
    this.registry.add(
      new Counter({
        name: "switchyard_steered_connections_total",
        help: "Connections the BPF program steered to an app's socket (BPF mode only)",
        labelNames: ["app"],
        collect(c) {
          c.reset();
          for (const [app, n] of steered() ?? []) c.inc({ app }, n);
        },
      }),
    );
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
      if (!f.name.startsWith("switchyard_") || this.registry.has(f.name)) return false;
      const type = this.familyTypes.get(f.name);
      if (type === undefined) this.familyTypes.set(f.name, f.type);
      return type === undefined || type === f.type;
    });
  }

  private readonly familyTypes = new Map<string, MetricFamily["type"]>();

  onWorkerMetrics(w: WorkerProcess, seq: number, metrics: MetricFamily[]): void {
    const t = this.tracked.get(w);
    if (!t || seq < t.lastSeq) return;
    t.last = this.admissible(metrics);
    t.lastSeq = seq;
    for (const f of [...t.waiters]) f(seq);
  }

  /** The worker's final counters (drained), or the last ones seen (`final` undefined: it is gone). */
  retire(w: WorkerProcess, final?: MetricFamily[]): void {
    const t = this.tracked.get(w);
    if (!t) return;
    this.tracked.delete(w);
    const snapshot = final ? this.admissible(final) : t.last;
    if (snapshot) {
      // Gauges describe the present; a gone worker contributes none.
      this.retired = aggregate([this.retired, totalsOf(snapshot)]);
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
    // Only switchyard_* collected: collecting the event-loop delay would reset its window.
    const own = this.registry.families((name) => name.startsWith("switchyard_"));
    return totalsOf(aggregate([this.retired, this.predecessor, ...snapshots.values(), own]));
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
    // Collected once per scrape: the event-loop delay's window restarts at each collection.
    const own = this.registry.families();
    // The predecessor's counts of a family this supervisor registers itself are summed with
    // that family's own values; the rest go with the workers' families.
    const ownNames = new Set(own.map((f) => f.name));
    const carried = this.predecessor.filter((f) => ownNames.has(f.name));
    const workers = aggregate([this.retired, this.predecessor.filter((f) => !ownNames.has(f.name)), ...snapshots.values()]);
    if (carried.length === 0) return { contentType: CONTENT_TYPE, body: renderText([...workers, ...own]) };
    const carriedNames = new Set(carried.map((f) => f.name));
    const continued = aggregate([own.filter((f) => carriedNames.has(f.name)), carried]);
    return { contentType: CONTENT_TYPE, body: renderText([...workers, ...continued, ...own.filter((f) => !carriedNames.has(f.name))]) };
  }
}

/** Counted where every supervisor reads it (the BPF counters map): a successor's own reading already holds the predecessor's. */
const CARRIED_ON_BY_THE_KERNEL = new Set(["switchyard_steered_connections_total"]);

/** Only what adds up over time: counters and histograms. */
function totalsOf(snapshot: Snapshot): Snapshot {
  return snapshot.filter((m) => String(m.type) === "counter" || String(m.type) === "histogram");
}
