import type { AppPlan, Plan } from "../config/plan.js";
import type { ListenerSpec } from "../common/messages.js";
import { planPrefix, prefixContains, type Prefix } from "../config/addresses.js";

interface Candidate {
  app: AppPlan;
  prefixes: Prefix[];
}

/**
 * Decides which app a connection belongs to. A listener serves one app in the
 * common case; a port shared by apps with disjoint Addresses needs the local address.
 */
export class Router {
  private readonly byListener = new Map<string, Candidate[]>();

  constructor(plan: Plan, listeners: readonly ListenerSpec[]) {
    const byName = new Map(plan.apps.map((a) => [a.name, a] as const));
    for (const l of listeners) {
      const candidates: Candidate[] = [];
      for (const name of l.apps) {
        const app = byName.get(name);
        if (app) candidates.push({ app, prefixes: app.addresses.map(planPrefix) });
      }
      this.byListener.set(l.key, candidates);
    }
  }

  /** `local` is read only when the listener is shared: its address costs a getsockname. */
  route(listenerKey: string, local: { readonly localAddress?: string | undefined; readonly localPort?: number | undefined }): AppPlan | undefined {
    const candidates = this.byListener.get(listenerKey);
    if (!candidates || candidates.length === 0) return undefined;
    if (candidates.length === 1) return candidates[0]!.app;
    const { localAddress, localPort } = local;
    if (localAddress === undefined || localPort === undefined) return undefined;
    return candidates.find((c) => c.app.ports.includes(localPort) && c.prefixes.some((p) => prefixContains(p, localAddress)))?.app;
  }
}
