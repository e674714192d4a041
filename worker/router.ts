import type { AppPlan, Plan } from "../config/plan.js";
import type { ListenerSpec } from "../common/messages.js";
import { planPrefix, prefixContains, type Prefix } from "../config/addresses.js";

interface Candidate {
  app: AppPlan;
  prefixes: Prefix[];
}

/**
 * Apps that share the dialled address and port, told apart by the TLS server
 * name of the ClientHello: an exact name first, then the longest wildcard,
 * then the app without ServerNames (the port's default), if any.
 */
export class NameChoice {
  private readonly exact = new Map<string, AppPlan>();
  private readonly wildcard = new Map<string, AppPlan>();
  private readonly fallback: AppPlan | undefined;
  /** Whether a PROXY header comes before the ClientHello (the apps agree: config/conflicts.ts). */
  readonly acceptProxyProtocol: boolean;

  constructor(readonly apps: readonly AppPlan[]) {
    for (const app of apps) {
      for (const name of app.serverNames) {
        if (name.startsWith("*.")) this.wildcard.set(name.slice(1), app);
        else this.exact.set(name, app);
      }
    }
    this.fallback = apps.find((a) => a.serverNames.length === 0);
    this.acceptProxyProtocol = apps.some((a) => a.acceptProxyProtocol);
  }

  /** The app for `serverName` (lowercased; undefined: no SNI), or undefined when none takes it. */
  pick(serverName: string | undefined): AppPlan | undefined {
    if (serverName === undefined) return this.fallback;
    const exact = this.exact.get(serverName);
    if (exact) return exact;
    // "*.example.com" is kept as ".example.com": try the name's suffixes, longest first.
    for (let dot = serverName.indexOf("."); dot >= 0; dot = serverName.indexOf(".", dot + 1)) {
      const app = this.wildcard.get(serverName.slice(dot));
      if (app) return app;
    }
    return this.fallback;
  }
}

/**
 * Decides which app a connection belongs to. A listener serves one app in the
 * common case; a port shared by apps with disjoint Addresses needs the local address.
 */
export class Router {
  private readonly byListener = new Map<string, Candidate[]>();
  /** Per listener, the NameChoice of each set of apps a dialled address can leave, by their indices. */
  private readonly choices = new Map<string, NameChoice>();

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

  /**
   * The app, or the NameChoice when apps share the dialled address and port by
   * server name (or the one app there names them). `local` is read only when
   * the listener is shared: its address costs a getsockname.
   */
  route(listenerKey: string, local: { readonly localAddress?: string | undefined; readonly localPort?: number | undefined }): AppPlan | NameChoice | undefined {
    const candidates = this.byListener.get(listenerKey);
    if (!candidates || candidates.length === 0) return undefined;
    let matching = candidates;
    if (candidates.length > 1) {
      const { localAddress, localPort } = local;
      if (localAddress === undefined || localPort === undefined) return undefined;
      matching = candidates.filter((c) => c.app.ports.includes(localPort) && c.prefixes.some((p) => prefixContains(p, localAddress)));
    }
    if (matching.length === 0) return undefined;
    if (matching.length === 1 && matching[0]!.app.serverNames.length === 0) return matching[0]!.app;
    const key = `${listenerKey}|${matching.map((c) => c.app.index).join(",")}`;
    let choice = this.choices.get(key);
    if (!choice) this.choices.set(key, (choice = new NameChoice(matching.map((c) => c.app))));
    return choice;
  }
}
