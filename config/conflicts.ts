// Rules that span apps: unique names, and who may share a port. They run on every
// app whose relevant keys are well-formed, even when something else in the file is
// wrong, so one `check` run shows every problem.
//
// Port sharing: the same port in two apps is an error unless both apps list explicit
// Addresses and no prefix of one overlaps a prefix of the other. An app without
// Addresses answers on every address, so it can share a port with no one.

import type { ConfigProblem } from "../common/errors.js";
import { parsePrefix, prefixesOverlap, type Prefix } from "./addresses.js";
import { parsePortEntry, PORT_MAX, type PortRange } from "./ports.js";

export interface AppFacts {
  index: number;
  name?: string;
  /** Ports entries that parsed, with their position in the Ports array. */
  ports: { entry: number; range: PortRange }[];
  /** "all" when Addresses is absent; "invalid" when present but broken (skip port checks). */
  addresses: Prefix[] | "all" | "invalid";
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Reads what it can from one raw app; anything malformed is left out (the schema reports it). */
export function appFacts(raw: unknown, index: number): AppFacts {
  const facts: AppFacts = { index, ports: [], addresses: "invalid" };
  if (!isRecord(raw)) return facts;
  if (typeof raw.Name === "string" && raw.Name.trim() !== "") facts.name = raw.Name;
  if (Array.isArray(raw.Ports)) {
    raw.Ports.forEach((p: unknown, entry) => {
      if (typeof p !== "number" && typeof p !== "string") return;
      const r = parsePortEntry(p);
      if (r.ok) facts.ports.push({ entry, range: r.value });
    });
  }
  if (raw.Addresses === undefined) facts.addresses = "all";
  else if (Array.isArray(raw.Addresses) && raw.Addresses.length > 0) {
    const prefixes: Prefix[] = [];
    for (const a of raw.Addresses) {
      const r = typeof a === "string" ? parsePrefix(a) : undefined;
      if (r === undefined || !r.ok) return facts;
      prefixes.push(r.value);
    }
    facts.addresses = prefixes;
  }
  return facts;
}

function duplicateNames(apps: readonly AppFacts[]): ConfigProblem[] {
  const first = new Map<string, number>();
  const problems: ConfigProblem[] = [];
  for (const app of apps) {
    if (app.name === undefined) continue;
    const earlier = first.get(app.name);
    if (earlier === undefined) first.set(app.name, app.index);
    else problems.push({ path: `Apps[${app.index}].Name`, message: `duplicate app name ${JSON.stringify(app.name)} (already used by Apps[${earlier}])` });
  }
  return problems;
}

/** Why apps a and b may not share a port, or undefined if they may. */
function sharingProblem(a: AppFacts, b: AppFacts): string | undefined {
  if (a.addresses === "all" || b.addresses === "all") {
    return "apps may share a port only if both set Addresses that do not overlap";
  }
  if (a.addresses === "invalid" || b.addresses === "invalid") return undefined;
  for (const pa of a.addresses) {
    for (const pb of b.addresses) {
      if (prefixesOverlap(pa, pb)) return `their Addresses overlap ("${pa.cidr}" and "${pb.cidr}")`;
    }
  }
  return undefined;
}

const describe = (a: AppFacts): string =>
  a.name === undefined ? `Apps[${a.index}]` : `app ${JSON.stringify(a.name)} (Apps[${a.index}])`;

function portConflicts(apps: readonly AppFacts[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  // owners[port]: the earlier apps already using that port.
  const owners: (number[] | undefined)[] = new Array(PORT_MAX + 1);
  const byIndex = new Map(apps.map((a) => [a.index, a]));
  const verdicts = new Map<string, string | undefined>();
  const verdict = (a: AppFacts, b: AppFacts): string | undefined => {
    const key = `${a.index}/${b.index}`;
    if (!verdicts.has(key)) verdicts.set(key, sharingProblem(a, b));
    return verdicts.get(key);
  };
  for (const app of apps) {
    if (app.addresses === "invalid") continue;
    const mine = new Set<number>();
    for (const { entry, range } of app.ports) {
      // Per earlier app: the first clashing port in this entry and how many clash.
      const clashes = new Map<number, { port: number; count: number; why: string }>();
      for (let port = range.start; port <= range.end; port++) {
        if (mine.has(port)) continue;
        mine.add(port);
        for (const other of owners[port] ?? []) {
          const why = verdict(byIndex.get(other)!, app);
          if (why === undefined) continue;
          const c = clashes.get(other);
          if (c === undefined) clashes.set(other, { port, count: 1, why });
          else c.count++;
        }
      }
      for (const [other, c] of clashes) {
        const what = c.count === 1 ? `port ${c.port} is` : `${c.count} ports of this range, from ${c.port}, are`;
        problems.push({
          path: `Apps[${app.index}].Ports[${entry}]`,
          message: `${what} used by both ${describe(byIndex.get(other)!)} and ${describe(app)}; ${c.why}`,
        });
      }
    }
    for (const port of mine) (owners[port] ??= []).push(app.index);
  }
  return problems;
}

export function crossAppProblems(apps: readonly AppFacts[]): ConfigProblem[] {
  return [...duplicateNames(apps), ...portConflicts(apps)];
}
