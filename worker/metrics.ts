import type { MetricFamily, TargetState } from "../common/messages.js";
import type { AppPlan, Target } from "../config/plan.js";
import type { ConnectionRecord } from "./connection.js";
import type { ConnectFailure } from "./connect.js";

type Labels = Record<string, string>;

/** One labelled value, kept as a plain number. */
interface Cell {
  labels: Labels;
  value: number;
}

/**
 * Values by label set, in the order they were first touched. Counting into
 * plain numbers instead of prom-client objects saves its label hashing and
 * validation on every connection, and keeps prom-client (a third of a
 * worker's module load time) out of the worker: the supervisor, which
 * serves /metrics, is the only process that needs it.
 */
class Family {
  private readonly cells = new Map<string, Cell>();

  constructor(
    private readonly name: string,
    private readonly help: string,
    private readonly type: "counter" | "gauge",
    private readonly aggregator: "sum" | "min" = "sum",
  ) {}

  /** Counted from zero again: what it held went out in a final snapshot. */
  clear(): void {
    this.cells.clear();
  }

  cell(key: string, labels: () => Labels): Cell {
    let c = this.cells.get(key);
    if (c === undefined) {
      c = { labels: labels(), value: 0 };
      this.cells.set(key, c);
    }
    return c;
  }

  export(): MetricFamily {
    const values = [...this.cells.values()].map((c) => ({ value: c.value, labels: c.labels }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/**
 * Connections refused when accepting, by errno code (EMFILE: the worker is out
 * of file descriptors). Module-level rather than in WorkerMetrics: the
 * acceptor, of which a worker process has one, counts into it directly, since
 * the hooks the worker's entry wires carry only accepted connections.
 */
const acceptErrors = new Family("switchyard_accept_errors_total", "Connections refused when accepting, by errno code (EMFILE: out of file descriptors)", "counter");

export function countAcceptError(code: string): void {
  acceptErrors.cell(code, () => ({ code })).value += 1;
}

/** Episodes of load shedding (worker/overload-guard.ts): module-level for the same reason. */
const overloadEpisodes = new Family("switchyard_overload_episodes_total", "Times a worker stopped accepting because its event loop fell behind", "counter");

export function countOverloadEpisode(): void {
  overloadEpisodes.cell("", () => ({})).value += 1;
}

/** Connection lifetimes of one app, in the histogram's buckets (not cumulative). */
interface Durations {
  labels: Labels;
  inBucket: number[];
  sum: number;
  count: number;
}

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600];

/** A Prometheus histogram of seconds per app, exported the way prom-client exports one. */
class DurationHistogram {
  private readonly byApp = new Map<string, Durations>();

  constructor(
    private readonly name: string,
    private readonly help: string,
  ) {}

  forApp(app: string): Durations {
    let d = this.byApp.get(app);
    if (d === undefined) {
      d = { labels: { app }, inBucket: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.byApp.set(app, d);
    }
    return d;
  }

  static observe(d: Durations, seconds: number): void {
    const i = DURATION_BUCKETS.findIndex((bound) => seconds <= bound);
    if (i >= 0) d.inBucket[i]! += 1;
    d.sum += seconds;
    d.count += 1;
  }

  export(): MetricFamily {
    const values: MetricFamily["values"] = [];
    for (const d of this.byApp.values()) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += d.inBucket[i]!;
        values.push({ value: cumulative, labels: { le, ...d.labels }, metricName: `${this.name}_bucket` });
      });
      values.push({ value: d.count, labels: { le: "+Inf", ...d.labels }, metricName: `${this.name}_bucket` });
      values.push({ value: d.sum, labels: { ...d.labels }, metricName: `${this.name}_sum` });
      values.push({ value: d.count, labels: { ...d.labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: "histogram", aggregator: "sum", values };
  }
}

/**
 * This worker's share of the proxy metrics. The supervisor collects every
 * worker's families and sums them (prom-client's aggregator), so each
 * family declares how it combines across workers.
 */
export class WorkerMetrics {
  private readonly accepted = new Family("switchyard_connections_total", "Connections accepted, per app", "counter");
  private readonly active = new Family("switchyard_connections_active", "Connections open now, per app", "gauge");
  private readonly errors = new Family("switchyard_connection_errors_total", "Connections that ended in an error, per app and reason", "counter");
  private readonly failures = new Family("switchyard_upstream_connect_failures_total", "Failed connection attempts to a target", "counter");
  private readonly bytes = new Family("switchyard_bytes_total", "Bytes carried, per app; direction in is client to target", "counter");
  private readonly durations = new DurationHistogram("switchyard_connection_duration_seconds", "Lifetime of finished connections");
  private readonly targetUp = new Family(
    "switchyard_target_up",
    "1 when the target is up: to the active health checks if its app has them, else when the last attempt to reach it succeeded (or none failed yet)",
    "gauge",
    "min",
  );
  /**
   * Apps with active checks: their targets' up is the supervisor's verdict, the
   * same in every worker, so the min over workers neither doubles nor flickers
   * with one worker's failed connect.
   */
  private readonly checkedApps = new Set<string>();
  /** Per app: the cells every finished connection updates. */
  private readonly finishCells = new Map<string, { bytesIn: Cell; bytesOut: Cell; durations: Durations }>();
  /** The plan's targets, by identity: no key to build per connection. */
  private readonly targetUpByTarget = new Map<Target, Cell>();

  constructor(apps: readonly AppPlan[]) {
    // One WorkerMetrics per generation; a recycled process's module-level counts went out with its last generation's "drained".
    acceptErrors.clear();
    overloadEpisodes.clear();
    for (const app of apps) {
      if (app.healthCheck !== null) this.checkedApps.add(app.name);
      this.acceptedCell(app.name);
      this.activeCell(app.name);
      for (const t of app.targets) {
        const c = this.targetUpCell(app.name, t.label);
        c.value = 1;
        this.targetUpByTarget.set(t, c);
      }
    }
  }

  private acceptedCell(app: string): Cell {
    return this.accepted.cell(app, () => ({ app }));
  }

  private activeCell(app: string): Cell {
    return this.active.cell(app, () => ({ app }));
  }

  private targetUpCell(app: string, target: string): Cell {
    return this.targetUp.cell(`${app}\0${target}`, () => ({ app, target }));
  }

  connectionAccepted(app: string): void {
    this.acceptedCell(app).value += 1;
    this.activeCell(app).value += 1;
  }

  upstreamFailed(app: AppPlan, f: ConnectFailure): void {
    const target = f.target.label;
    this.failures.cell(`${app.name}\0${target}`, () => ({ app: app.name, target })).value += 1;
    if (app.healthCheck === null) this.targetUpCell(app.name, target).value = 0;
  }

  upstreamConnected(app: AppPlan, target: Target): void {
    if (app.healthCheck === null) (this.targetUpByTarget.get(target) ?? this.targetUpCell(app.name, target.label)).value = 1;
  }

  /** The supervisor's checks; states of apps this worker's plan does not check are ignored. */
  checked(states: readonly TargetState[]): void {
    for (const s of states) {
      if (this.checkedApps.has(s.app)) this.targetUpCell(s.app, s.target).value = s.up ? 1 : 0;
    }
  }

  connectionFinished(r: ConnectionRecord): void {
    const app = r.app ?? "";
    if (r.app !== undefined) this.activeCell(app).value -= 1;
    if (r.end !== "closed") this.errors.cell(`${app}\0${r.end}`, () => ({ app, reason: r.end })).value += 1;
    let f = this.finishCells.get(app);
    if (f === undefined) {
      f = {
        bytesIn: this.bytes.cell(`${app}\0in`, () => ({ app, direction: "in" })),
        bytesOut: this.bytes.cell(`${app}\0out`, () => ({ app, direction: "out" })),
        durations: this.durations.forApp(app),
      };
      this.finishCells.set(app, f);
    }
    f.bytesIn.value += r.bytesIn;
    f.bytesOut.value += r.bytesOut;
    DurationHistogram.observe(f.durations, r.durationMs / 1000);
  }

  /** Every family, in the order /metrics lists them. */
  snapshot(): MetricFamily[] {
    return [this.accepted, this.active, this.errors, acceptErrors, overloadEpisodes, this.failures, this.bytes, this.durations, this.targetUp].map((f) => f.export());
  }
}
