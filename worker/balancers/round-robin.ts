import type { Target } from "../../config/plan.js";
import type { Balancer } from "./balancer.js";

/**
 * Round-robin over the targets that are up; the ones marked down come last,
 * so a connection still gets a chance when every target looks down.
 */
export class RoundRobin implements Balancer {
  private next = 0;
  constructor(private readonly targets: readonly Target[]) {}

  order(isUp: (t: Target) => boolean): Target[] {
    const n = this.targets.length;
    const start = this.next;
    this.next = (this.next + 1) % n;
    const up: Target[] = [];
    const down: Target[] = [];
    for (let i = 0; i < n; i++) {
      const t = this.targets[(start + i) % n]!;
      (isUp(t) ? up : down).push(t);
    }
    return up.concat(down);
  }
}
