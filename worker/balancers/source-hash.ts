import type { Target } from "../../config/plan.js";
import { type Balancer } from "./balancer.js";
import { hashString, unitHash } from "./hash.js";

/**
 * The same client address goes to the same target: weighted rendezvous hashing
 * (highest random weight). Each target scores weight / -ln(u), u a hash of (client,
 * target), and the scores sorted give the whole order. A client's ranking of two
 * targets never depends on a third, so adding a target moves only the clients it now
 * wins (its share of the total weight) and removing one moves only its own clients,
 * to their second choice; when a target is down, its clients fail over the same way.
 * A ring would need virtual nodes to spread evenly and a walk for the fallback order;
 * this costs one hash per target per connection, cheap for tens of targets.
 */
export class SourceHash implements Balancer {
  readonly usesClient = true;
  private readonly seeds: number[];

  constructor(private readonly targets: readonly Target[]) {
    // Keyed by the address, not the position or the weight: reordering the list moves
    // no one. A repeated address gets "#2", "#3" so that each copy draws its own score.
    const seen = new Map<string, number>();
    this.seeds = targets.map((t) => {
      const k = (seen.get(t.label) ?? 0) + 1;
      seen.set(t.label, k);
      return hashString(k === 1 ? t.label : `${t.label}#${k}`);
    });
  }

  order(isUp: (t: Target) => boolean, client = ""): Target[] {
    const c = hashString(client);
    const scored = this.targets.map((t, i) => ({ t, up: isUp(t), score: t.weight / -Math.log(unitHash(c, this.seeds[i]!)) }));
    scored.sort((a, b) => (a.up === b.up ? b.score - a.score : a.up ? -1 : 1));
    return scored.map((s) => s.t);
  }
}
