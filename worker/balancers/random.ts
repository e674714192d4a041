import type { Target } from "../../config/plan.js";
import { candidates, completeOrder, type Balancer } from "./balancer.js";

/** One target at random, in proportion to its weight; no state, so no pattern to fall into step with. */
export class RandomChoice implements Balancer {
  constructor(
    private readonly targets: readonly Target[],
    private readonly random: () => number,
  ) {}

  order(isUp: (t: Target) => boolean): Target[] {
    const among = candidates(this.targets, isUp);
    let total = 0;
    for (const t of among) total += t.weight;
    let r = this.random() * total;
    // The last candidate also catches r === total from rounding.
    let chosen = among[among.length - 1]!;
    for (const t of among) {
      r -= t.weight;
      if (r < 0) {
        chosen = t;
        break;
      }
    }
    return completeOrder(this.targets, [chosen], this.targets.indexOf(chosen), isUp);
  }
}
