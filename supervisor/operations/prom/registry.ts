// The supervisor's own metrics, in the order they were registered: the order
// /metrics lists them in.
import type { Family } from "./family.js";
import type { Metric } from "./instruments.js";

export class Registry {
  private readonly metrics = new Map<string, Metric>();

  /** Returns the metric, so `registry.add(new Counter(...))` keeps a handle. */
  add<M extends Metric>(metric: M): M {
    const known = this.metrics.get(metric.name);
    if (known !== undefined && known !== metric) throw new Error(`A metric with the name ${metric.name} has already been registered.`);
    this.metrics.set(metric.name, metric);
    return metric;
  }

  has(name: string): boolean {
    return this.metrics.has(name);
  }

  names(): string[] {
    return [...this.metrics.keys()];
  }

  /** Each metric's family, collected now; `which` picks by name before anything is collected. */
  families(which: (name: string) => boolean = () => true): Family[] {
    const out: Family[] = [];
    for (const m of this.metrics.values()) if (which(m.name)) out.push(m.get());
    return out;
  }
}
