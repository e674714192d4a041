import type { Target } from "../../config/plan.js";
import type { OpenConnections } from "./open-connections.js";
import { candidates, completeOrder, type Balancer } from "./balancer.js";

/**
 * The target with the fewest open connections per unit of weight. Ties are broken by
 * a rotating start: a burst of connections accepted together all see the same counts
 * (a count rises only when the target accepts), and would otherwise all go to one.
 */
export class LeastConnections implements Balancer {
  private next = 0;
  constructor(
    private readonly targets: readonly Target[],
    private readonly open: OpenConnections,
  ) {}

  order(isUp: (t: Target) => boolean): Target[] {
    const among = candidates(this.targets, isUp);
    const start = this.next;
    this.next = (this.next + 1) % among.length;
    const rotated = among.slice(start).concat(among.slice(0, start));
    // Array.prototype.sort is stable: among equals, the rotation decides.
    rotated.sort((a, b) => this.open.compare(a, b));
    return completeOrder(this.targets, rotated, 0, isUp);
  }
}
