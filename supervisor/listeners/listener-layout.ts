import type { Plan } from "../../config/plan.js";
import type { ListenerSpec } from "../../common/messages.js";
import { planPrefix } from "../../config/addresses.js";

export interface PortListenerSpec extends ListenerSpec {
  host: string;
  port: number;
  family: 4 | 6;
  /** Bound to the family's wildcard address because an app asked for a prefix, not one address. */
  wildcard: boolean;
}

const WILDCARD = { 4: "0.0.0.0", 6: "::" } as const;

/** How a listener is named: "127.0.0.1:7777", "[::]:7777". */
export function listenerKey(host: string, port: number, family: 4 | 6): string {
  return family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Ports mode: the listening sockets a Plan needs, one per (address, port). An
 * app on a prefix gets the family's wildcard; an app on single addresses gets
 * those. Apps sharing a port (disjoint Addresses) share the wildcard socket and
 * the worker tells them apart by local address.
 */
export function portListeners(plan: Plan): PortListenerSpec[] {
  // (family, port) → host ("" for wildcard) → app names
  const groups = new Map<string, Map<string, Set<string>>>();
  for (const app of plan.apps) {
    for (const text of app.addresses) {
      const cidr = planPrefix(text);
      const host = cidr.length === (cidr.family === 4 ? 32 : 128) ? text.split("/")[0]! : "";
      for (const port of app.ports) {
        const g = `${cidr.family}/${port}`;
        let hosts = groups.get(g);
        if (!hosts) groups.set(g, (hosts = new Map()));
        let apps = hosts.get(host);
        if (!apps) hosts.set(host, (apps = new Set()));
        apps.add(app.name);
      }
    }
  }
  const specs: PortListenerSpec[] = [];
  for (const [g, grouped] of groups) {
    let hosts = grouped;
    const [fam, portText] = g.split("/") as [string, string];
    const family = Number(fam) as 4 | 6;
    const port = Number(portText);
    if (hosts.has("") && hosts.size > 1) {
      // Linux refuses a wildcard and a specific listener on one port: fold them into the wildcard.
      const all = new Set<string>();
      for (const apps of hosts.values()) for (const a of apps) all.add(a);
      hosts = new Map([["", all]]);
    }
    for (const [host, apps] of hosts) {
      const bind = host === "" ? WILDCARD[family] : host;
      specs.push({ key: listenerKey(bind, port, family), apps: [...apps].sort(), host: bind, port, family, wildcard: host === "" });
    }
  }
  return specs.sort((a, b) => a.port - b.port || a.family - b.family || a.host.localeCompare(b.host));
}
