import type { Target } from "../../config/plan.js";

/** A balancing strategy: the order in which to try an app's targets for one connection. */
export interface Balancer {
  /** Every target exactly once, most preferred first. */
  order(isUp: (t: Target) => boolean): Target[];
}
