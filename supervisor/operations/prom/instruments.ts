// Counters, gauges and histograms that keep plain numbers and export
// prom-client's JSON (family.ts). Only what the supervisor uses: no
// exemplars, no timers, label names checked by the types rather than at
// run time. Values keep the order their label sets were first touched, as
// prom-client's did, so /metrics lists series in the same order.
import { labelKey, type Aggregator, type Family, type Labels, type Sample } from "./family.js";

export interface MetricOptions<I> {
  name: string;
  help: string;
  labelNames?: readonly string[];
  aggregator?: Aggregator;
  /** Called on every export, before the values are read: to set them from elsewhere. */
  collect?: (self: I) => void;
}

/** What a registry holds: a name, and a family on demand. */
export interface Metric {
  readonly name: string;
  get(): Family;
}

abstract class Cells<I> implements Metric {
  readonly name: string;
  protected readonly help: string;
  protected readonly labelNames: readonly string[];
  private readonly sortedNames: readonly string[];
  private readonly aggregator: Aggregator;
  private readonly collect: ((self: I) => void) | undefined;
  protected cells = new Map<string, Sample>();
  protected abstract readonly type: "counter" | "gauge";

  constructor(o: MetricOptions<I>) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    this.sortedNames = [...this.labelNames].sort();
    this.aggregator = o.aggregator ?? "sum";
    this.collect = o.collect;
    this.reset();
  }

  /** Forgets every series; one without labels starts again at 0. */
  reset(): void {
    this.cells = new Map();
    if (this.labelNames.length === 0) this.cells.set("", { value: 0, labels: {} });
  }

  remove(labels: Labels): void {
    this.cells.delete(labelKey(labels, this.sortedNames));
  }

  protected add(labels: Labels, by: number): void {
    const key = labelKey(labels, this.sortedNames);
    const cell = this.cells.get(key);
    if (cell) cell.value += by;
    else this.cells.set(key, { value: by, labels });
  }

  get(): Family {
    this.collect?.(this as unknown as I);
    return { help: this.help, name: this.name, type: this.type, values: [...this.cells.values()], aggregator: this.aggregator };
  }
}

export class Counter extends Cells<Counter> {
  protected readonly type = "counter";

  inc(labels: Labels = {}, by = 1): void {
    if (!Number.isFinite(by) || by < 0) throw new TypeError(`${this.name}: a counter goes up by a finite amount, not ${by}`);
    this.add(labels, by);
  }
}

export class Gauge extends Cells<Gauge> {
  protected readonly type = "gauge";

  set(labels: Labels, value: number): void {
    // A known series is replaced where it stands: it keeps its position in the export.
    this.cells.set(labelKey(labels), { value, labels });
  }

  inc(labels: Labels, by = 1): void {
    this.add(labels, by);
  }
}

interface Observed {
  labels: Labels;
  /** Observations per bucket (not cumulative), by index in `bounds`. */
  inBucket: number[];
  sum: number;
  count: number;
}

/** A cumulative histogram exported as prom-client exports one: `le` first, then the series' labels. */
export class Histogram implements Metric {
  readonly name: string;
  private readonly help: string;
  private readonly bounds: readonly number[];
  private readonly sortedNames: readonly string[];
  private readonly series = new Map<string, Observed>();

  constructor(o: { name: string; help: string; buckets: readonly number[]; labelNames?: readonly string[] }) {
    this.name = o.name;
    this.help = o.help;
    this.bounds = o.buckets;
    this.sortedNames = [...(o.labelNames ?? [])].sort();
    // Without labels the one series exists from the start (zeros), as in prom-client.
    if (this.sortedNames.length === 0) this.series.set("", this.fresh({}));
  }

  private fresh(labels: Labels): Observed {
    return { labels, inBucket: this.bounds.map(() => 0), sum: 0, count: 0 };
  }

  observe(value: number, labels: Labels = {}): void {
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: cannot observe ${value}`);
    const key = labelKey(labels, this.sortedNames);
    let s = this.series.get(key);
    if (!s) {
      s = this.fresh(labels);
      this.series.set(key, s);
    }
    const i = this.bounds.findIndex((bound) => value <= bound);
    if (i >= 0) s.inBucket[i]! += 1;
    s.sum += value;
    s.count += 1;
  }

  get(): Family {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.inBucket[i]!;
        values.push({ value: cumulative, labels: { le, ...s.labels }, metricName: bucket });
      });
      values.push({ value: s.count, labels: { le: "+Inf", ...s.labels }, metricName: bucket });
      values.push({ value: s.sum, labels: { ...s.labels }, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: { ...s.labels }, metricName: `${this.name}_count` });
    }
    return { help: this.help, name: this.name, type: "histogram", values, aggregator: "sum" };
  }
}
