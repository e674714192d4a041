import type { Target } from "../../config/plan.js";

/**
 * Open connections per target of one app, in this worker only: counted from the
 * moment a target accepts until the proxied connection ends. Workers do not share
 * counts (a shared counter would cost a round trip per connection); the kernel
 * spreads accepted connections evenly over the workers, so each worker's view is a
 * close sample of the whole. Keyed by the Plan's Target objects, so two apps that
 * name the same address count apart, as HAProxy counts per backend.
 */
export class OpenConnections {
  private readonly counts = new Map<Target, number>();

  count(t: Target): number {
    return this.counts.get(t) ?? 0;
  }

  connected(t: Target): void {
    this.counts.set(t, this.count(t) + 1);
  }

  closed(t: Target): void {
    const n = this.count(t) - 1;
    if (n > 0) this.counts.set(t, n);
    else this.counts.delete(t);
  }

  /**
   * Negative when `a` is the less loaded per unit of weight, by (open + 1) / weight:
   * the +1 lets weights decide between idle targets (weight 3 before weight 1), as
   * HAProxy's leastconn does. Cross-multiplied: exact, no floating point.
   */
  compare(a: Target, b: Target): number {
    return (this.count(a) + 1) * b.weight - (this.count(b) + 1) * a.weight;
  }
}
