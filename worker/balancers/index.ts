import type { AppPlan } from "../../config/plan.js";
import type { Balancer, BalancerDeps } from "./balancer.js";
import { LeastConnections } from "./least-connections.js";
import { PowerOfTwo } from "./power-of-two.js";
import { RandomChoice } from "./random.js";
import { RoundRobin } from "./round-robin.js";
import { SourceHash } from "./source-hash.js";

export type { Balancer, BalancerDeps };
export { OpenConnections } from "./open-connections.js";

const strategies: Record<AppPlan["balance"], (app: AppPlan, deps: BalancerDeps) => Balancer> = {
  "round-robin": (app) => new RoundRobin(app.targets),
  random: (app, d) => new RandomChoice(app.targets, d.random),
  "least-connections": (app, d) => new LeastConnections(app.targets, d.open),
  "power-of-two": (app, d) => new PowerOfTwo(app.targets, d.open, d.random),
  "source-hash": (app) => new SourceHash(app.targets),
};

export function balancerFor(app: AppPlan, deps: BalancerDeps): Balancer {
  return strategies[app.balance](app, deps);
}
