import type { Target } from "../../config/plan.js";
import { candidates, completeOrder, type Balancer } from "./balancer.js";

/**
 * Smooth weighted round robin, as nginx does it: each turn every candidate gains its
 * weight, the one with the most goes first and pays back the total. Weights 5,1,1
 * give a a a b a c a ... rather than a a a a a b c, so a heavy target never gets a
 * burst; equal weights give plain rotation. A target that is down sits its turns out
 * and the others share them.
 */
export class RoundRobin implements Balancer {
  private readonly current = new Map<Target, number>();
  constructor(private readonly targets: readonly Target[]) {}

  order(isUp: (t: Target) => boolean): Target[] {
    const among = candidates(this.targets, isUp);
    let total = 0;
    let best: Target | undefined;
    let bestCurrent = -Infinity;
    for (const t of among) {
      const c = (this.current.get(t) ?? 0) + t.weight;
      this.current.set(t, c);
      total += t.weight;
      // Strictly greater: ties go to the earlier target, which makes equal weights rotate in config order.
      if (c > bestCurrent) {
        best = t;
        bestCurrent = c;
      }
    }
    const chosen = best!;
    this.current.set(chosen, bestCurrent - total);
    return completeOrder(this.targets, [chosen], this.targets.indexOf(chosen), isUp);
  }
}
