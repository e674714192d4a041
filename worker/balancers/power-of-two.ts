import type { Target } from "../../config/plan.js";
import type { OpenConnections } from "./open-connections.js";
import { candidates, completeOrder, type Balancer } from "./balancer.js";

/**
 * Two candidates at random, the one with fewer open connections per unit of weight
 * goes first (Mitzenmacher's "power of two choices", Envoy's least_request default).
 * Nearly as even as least-connections, but a burst that sees stale counts spreads at
 * random instead of piling onto the one target that looked emptiest.
 */
export class PowerOfTwo implements Balancer {
  constructor(
    private readonly targets: readonly Target[],
    private readonly open: OpenConnections,
    private readonly random: () => number,
  ) {}

  order(isUp: (t: Target) => boolean): Target[] {
    const among = candidates(this.targets, isUp);
    const n = among.length;
    const i = Math.floor(this.random() * n);
    if (n === 1) return completeOrder(this.targets, [among[0]!], 0, isUp);
    // A second index drawn from the n - 1 others: the two are always distinct.
    const j = (i + 1 + Math.floor(this.random() * (n - 1))) % n;
    const a = among[i]!;
    const b = among[j]!;
    const [winner, loser] = this.open.compare(b, a) < 0 ? [b, a] : [a, b];
    return completeOrder(this.targets, [winner, loser], this.targets.indexOf(winner), isUp);
  }
}
