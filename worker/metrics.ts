import { Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { AppPlan, Target } from "../config/plan.js";
import type { ConnectionRecord } from "./proxy.js";
import type { ConnectFailure } from "./connect.js";

/** One labelled value, kept as a plain number and handed to prom-client at scrape time. */
interface Cell<L> {
  labels: L;
  value: number;
}

/**
 * Values by label set, in the order prom-client would have created them.
 * Counting into plain numbers instead of calling prom-client per connection
 * saves the label hashing and validation it does on every call (a few
 * percent of a worker's CPU under connection-per-request load).
 */
class Cells<L> {
  private readonly cells = new Map<string, Cell<L>>();

  cell(key: string, labels: () => L): Cell<L> {
    let c = this.cells.get(key);
    if (c === undefined) {
      c = { labels: labels(), value: 0 };
      this.cells.set(key, c);
    }
    return c;
  }

  values(): IterableIterator<Cell<L>> {
    return this.cells.values();
  }
}

type AppLabel = { app: string };

interface DurationCell {
  observe(seconds: number): void;
}

/**
 * This worker's share of the proxy metrics. The supervisor collects every
 * worker's registry as JSON and sums them (prom-client's aggregator), so each
 * metric declares how it combines across workers.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly acceptedCells = new Cells<AppLabel>();
  private readonly activeCells = new Cells<AppLabel>();
  private readonly errorCells = new Cells<{ app: string; reason: string }>();
  private readonly failureCells = new Cells<{ app: string; target: string }>();
  private readonly bytesCells = new Cells<{ app: string; direction: "in" | "out" }>();
  private readonly targetUpCells = new Cells<{ app: string; target: string }>();
  /** Per app: the cells every finished connection updates. */
  private readonly finishCells = new Map<string, { bytesIn: Cell<unknown>; bytesOut: Cell<unknown>; duration: DurationCell }>();
  /** The plan's targets, by identity: no key to build per connection. */
  private readonly targetUpByTarget = new Map<Target, Cell<unknown>>();
  private readonly duration: Histogram<"app">;

  constructor(apps: readonly AppPlan[]) {
    const counter = (name: string, help: string, labelNames: string[], cells: Cells<Record<string, string>>): void => {
      new Counter({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const c of cells.values()) this.inc(c.labels, c.value);
        },
      });
    };
    const gauge = (name: string, help: string, labelNames: string[], cells: Cells<Record<string, string>>, aggregator?: "min"): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        ...(aggregator ? { aggregator } : {}),
        collect() {
          this.reset();
          for (const c of cells.values()) this.set(c.labels, c.value);
        },
      });
    };
    counter("switchyard_connections_total", "Connections accepted, per app", ["app"], this.acceptedCells);
    gauge("switchyard_connections_active", "Connections open now, per app", ["app"], this.activeCells);
    counter("switchyard_connection_errors_total", "Connections that ended in an error, per app and reason", ["app", "reason"], this.errorCells);
    counter("switchyard_upstream_connect_failures_total", "Failed connection attempts to a target", ["app", "target"], this.failureCells);
    counter("switchyard_bytes_total", "Bytes carried, per app; direction in is client to target", ["app", "direction"], this.bytesCells);
    this.duration = new Histogram({
      name: "switchyard_connection_duration_seconds",
      help: "Lifetime of finished connections",
      labelNames: ["app"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600],
      registers: [this.registry],
    });
    gauge("switchyard_target_up", "1 when the last attempt to reach the target succeeded (or none failed yet), else 0", ["app", "target"], this.targetUpCells, "min");
    for (const app of apps) {
      this.accepted(app.name);
      this.active(app.name);
      for (const t of app.targets) {
        const c = this.targetUp(app.name, t.label);
        c.value = 1;
        this.targetUpByTarget.set(t, c);
      }
    }
  }

  private accepted(app: string): Cell<AppLabel> {
    return this.acceptedCells.cell(app, () => ({ app }));
  }

  private active(app: string): Cell<AppLabel> {
    return this.activeCells.cell(app, () => ({ app }));
  }

  private targetUp(app: string, target: string): Cell<{ app: string; target: string }> {
    return this.targetUpCells.cell(`${app}\0${target}`, () => ({ app, target }));
  }

  connectionAccepted(app: string): void {
    this.accepted(app).value += 1;
    this.active(app).value += 1;
  }

  upstreamFailed(app: AppPlan, f: ConnectFailure): void {
    const target = f.target.label;
    this.failureCells.cell(`${app.name}\0${target}`, () => ({ app: app.name, target })).value += 1;
    this.targetUp(app.name, target).value = 0;
  }

  upstreamConnected(app: AppPlan, target: Target): void {
    (this.targetUpByTarget.get(target) ?? this.targetUp(app.name, target.label)).value = 1;
  }

  connectionFinished(r: ConnectionRecord): void {
    const app = r.app ?? "";
    if (r.app !== undefined) this.active(app).value -= 1;
    if (r.end !== "closed") this.errorCells.cell(`${app}\0${r.end}`, () => ({ app, reason: r.end })).value += 1;
    let f = this.finishCells.get(app);
    if (f === undefined) {
      f = {
        bytesIn: this.bytesCells.cell(`${app}\0in`, () => ({ app, direction: "in" })),
        bytesOut: this.bytesCells.cell(`${app}\0out`, () => ({ app, direction: "out" })),
        // prom-client's labelled child binds the labels once instead of per observation.
        duration: this.duration.labels({ app }),
      };
      this.finishCells.set(app, f);
    }
    f.bytesIn.value += r.bytesIn;
    f.bytesOut.value += r.bytesOut;
    f.duration.observe(r.durationMs / 1000);
  }

  async snapshot(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return this.registry.getMetricsAsJSON();
  }
}
