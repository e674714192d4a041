import type { AppPlan } from "../../config/plan.js";
import type { Balancer } from "./balancer.js";
import { RoundRobin } from "./round-robin.js";

export type { Balancer };

const strategies: Record<AppPlan["balance"], (app: AppPlan) => Balancer> = {
  "round-robin": (app) => new RoundRobin(app.targets),
};

export function balancerFor(app: AppPlan): Balancer {
  return strategies[app.balance](app);
}
