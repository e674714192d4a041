import type { Target } from "../../config/plan.js";
import type { OpenConnections } from "./open-connections.js";

/**
 * A balancing strategy: the order in which to try an app's targets for one connection.
 * Every strategy keeps one contract: every target exactly once, most preferred first,
 * the ones that look down last, so a connection still gets a chance when all look down.
 */
export interface Balancer {
  /** `client` is the client's address, given only to a strategy that sets `usesClient`. */
  order(isUp: (t: Target) => boolean, client?: string): Target[];
  /** Whether `order` needs the client's address (a getpeername the others need not pay). */
  readonly usesClient?: boolean;
}

/** What a strategy may read besides the targets: this worker's open connections, and chance. */
export interface BalancerDeps {
  open: OpenConnections;
  /** Uniform in [0, 1); Math.random unless a test injects a seeded one. */
  random: () => number;
}

/**
 * The targets a strategy chooses among: those that are up, or all of them when none is,
 * so that the choice (and its spread) still holds while every target looks down.
 */
export function candidates(targets: readonly Target[], isUp: (t: Target) => boolean): Target[] {
  const up = targets.filter(isUp);
  return up.length > 0 ? up : [...targets];
}

/**
 * `first` (the strategy's choices, best first), then the other targets that are up in
 * config order from index `from` round, then the down ones in that same order.
 */
export function completeOrder(targets: readonly Target[], first: readonly Target[], from: number, isUp: (t: Target) => boolean): Target[] {
  const n = targets.length;
  const out = [...first];
  // A Set: least-connections puts every up target in `first`.
  const taken = new Set(first);
  const down: Target[] = [];
  for (let i = 0; i < n; i++) {
    const t = targets[(from + i) % n]!;
    if (taken.has(t)) continue;
    if (isUp(t)) out.push(t);
    else down.push(t);
  }
  return out.concat(down);
}
