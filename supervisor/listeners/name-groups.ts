import type { Plan } from "../../config/plan.js";
import { planPrefix, prefixesOverlap, type Prefix } from "../../config/addresses.js";

/** A socket of BPF mode: the apps it carries, under the key it is known by. */
export interface SocketGroup {
  key: string;
  apps: string[];
}

/**
 * BPF mode gives each app a socket of its own, and the port map sends each
 * (address, port) to one socket. Apps that share an address and port by TLS
 * server name (config/conflicts.ts allows nothing else to overlap) must then
 * share the socket, and the worker picks the app by the ClientHello: this
 * groups them, transitively. An app alone keeps its name as the key, so its
 * socket is the one it always had; a group's key names its apps.
 */
export function socketGroups(plan: Plan): Map<string, SocketGroup> {
  const parent = plan.apps.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
    return i;
  };
  const prefixes: Prefix[][] = plan.apps.map((a) => a.addresses.map(planPrefix));
  const byPort = new Map<number, number[]>();
  plan.apps.forEach((app, i) => {
    for (const port of app.ports) {
      const list = byPort.get(port);
      if (list) list.push(i);
      else byPort.set(port, [i]);
    }
  });
  for (const apps of byPort.values()) {
    for (let x = 1; x < apps.length; x++) {
      for (let y = 0; y < x; y++) {
        const [i, j] = [apps[x]!, apps[y]!];
        if (find(i) === find(j)) continue;
        if (prefixes[i]!.some((p) => prefixes[j]!.some((q) => prefixesOverlap(p, q)))) parent[find(i)] = find(j);
      }
    }
  }
  const members = new Map<number, string[]>();
  plan.apps.forEach((app, i) => {
    const root = find(i);
    const list = members.get(root);
    if (list) list.push(app.name);
    else members.set(root, [app.name]);
  });
  const out = new Map<string, SocketGroup>();
  for (const apps of members.values()) {
    const group = { key: apps.length === 1 ? apps[0]! : `sni:${[...apps].sort().join(",")}`, apps };
    for (const name of apps) out.set(name, group);
  }
  return out;
}
