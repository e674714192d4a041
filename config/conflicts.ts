// Rules that span apps: unique names, and who may share a port. They run on every
// app whose relevant keys are well-formed, even when something else in the file is
// wrong, so one `check` run shows every problem.
//
// Port sharing: the same port in two apps is an error unless both apps list explicit
// Addresses and no prefix of one overlaps a prefix of the other, or the apps tell
// their connections apart by TLS server name: at least one of the two lists
// ServerNames, no name is in both, and they agree on AcceptProxyProtocol (the
// header comes before the ClientHello). The one without ServerNames, if any, is the
// port's default.
//
// The port check runs only within the limits (limits.ts), which bound the ports all
// apps cover together; it walks each app's ports once, never once per entry, and
// never compares every pair of apps: apps that share a port are found by sorting
// their prefixes, which costs nothing extra when they do not overlap.

import { ALL_ADDRESSES, parsePrefix, prefixesOverlap, type Prefix } from "./addresses.js";
import { MAX_APPS } from "./limits.js";
import type { ProblemCollector } from "./problems.js";
import { mergeRanges, parsePortEntry, PORT_MAX, type PortRange } from "./ports.js";
import { parseServerName } from "./server-names.js";

export interface AppFacts {
  index: number;
  name?: string;
  /** Ports entries that parsed, with their position in the Ports array. */
  ports: { entry: number; range: PortRange }[];
  /** "all" when Addresses is absent; "invalid" when present but broken (skip port checks). */
  addresses: Prefix[] | "all" | "invalid";
  /** Its ServerNames that parsed, normalised; empty when it has none. */
  serverNames: string[];
  acceptProxyProtocol: boolean;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Reads what it can from one raw app; anything malformed is left out (the schema reports it). */
export function appFacts(raw: unknown, index: number): AppFacts {
  const facts: AppFacts = { index, ports: [], addresses: "invalid", serverNames: [], acceptProxyProtocol: false };
  if (!isRecord(raw)) return facts;
  facts.acceptProxyProtocol = raw.AcceptProxyProtocol === true;
  if (Array.isArray(raw.ServerNames)) {
    for (const n of raw.ServerNames) {
      const r = typeof n === "string" ? parseServerName(n) : undefined;
      if (r?.ok) facts.serverNames.push(r.value);
    }
  }
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

export function duplicateNames(apps: readonly AppFacts[], sink: ProblemCollector): void {
  const first = new Map<string, number>();
  for (const app of apps) {
    if (app.name === undefined) continue;
    const earlier = first.get(app.name);
    if (earlier === undefined) first.set(app.name, app.index);
    else sink.add({ path: `Apps[${app.index}].Name`, message: `duplicate app name ${JSON.stringify(app.name)} (already used by Apps[${earlier}])` });
  }
}

const describe = (a: AppFacts): string =>
  a.name === undefined ? `Apps[${a.index}]` : `app ${JSON.stringify(a.name)} (Apps[${a.index}])`;

const ALL_PREFIXES: Prefix[] = ALL_ADDRESSES.map((cidr) => {
  const p = parsePrefix(cidr);
  if (!p.ok) throw new Error(`internal: ${cidr}`);
  return p.value;
});

/** Steps of the pairwise search before it gives up: only a file full of clashes gets near it. */
const SEARCH_BUDGET = 1_000_000;
/** Clashes collected before the search gives up: far more than are reported, enough to count many. */
const CLASHES_MAX = 10_000;
/** Above this many prefix pairs, a clash is explained by the pair the search found, not the first in file order. */
const MESSAGE_PAIRS_MAX = 1_000_000;

/**
 * Every distinct prefix of the apps, sorted by family, network, then length, so
 * that a prefix comes right before every prefix inside it: `last[r]` is the rank of
 * the last one inside prefix r, and r contains s exactly when r <= s <= last[r].
 */
class PrefixRanks {
  readonly prefixes: Prefix[];
  readonly last: Int32Array;
  private readonly rankOf = new Map<string, number>();

  constructor(all: Iterable<Prefix>) {
    const unique = new Map<string, Prefix>();
    for (const p of all) unique.set(`${p.family}/${p.cidr}`, p);
    this.prefixes = [...unique.values()].sort(
      (a, b) => a.family - b.family || (a.network < b.network ? -1 : a.network > b.network ? 1 : a.length - b.length),
    );
    this.prefixes.forEach((p, r) => this.rankOf.set(`${p.family}/${p.cidr}`, r));
    this.last = new Int32Array(this.prefixes.length);
    const open: number[] = [];
    for (let r = 0; r <= this.prefixes.length; r++) {
      const p = this.prefixes[r];
      while (open.length > 0 && (p === undefined || !prefixesOverlap(this.prefixes[open[open.length - 1]!]!, p))) {
        this.last[open.pop()!] = r - 1;
      }
      if (p !== undefined) open.push(r);
    }
  }

  rank(p: Prefix): number {
    return this.rankOf.get(`${p.family}/${p.cidr}`)!;
  }

  /** The app's prefixes that no other of its prefixes contains, as sorted ranks. */
  outermost(prefixes: readonly Prefix[]): number[] {
    const ranks = [...new Set(prefixes.map((p) => this.rank(p)))].sort((a, b) => a - b);
    const out: number[] = [];
    for (const r of ranks) if (out.length === 0 || r > this.last[out[out.length - 1]!]!) out.push(r);
    return out;
  }
}

/** For each Ports entry of one app, the ports no earlier entry of the app covered, as ranges. */
class NewPorts {
  // next[p]: p when p is not yet covered by this app, else a later port to look at.
  private readonly next = Int32Array.from({ length: PORT_MAX + 2 }, (_, i) => i);
  private readonly touched: number[] = [];

  private find(p: number): number {
    const next = this.next;
    while (next[p] !== p) {
      next[p] = next[next[p]!]!;
      p = next[p]!;
    }
    return p;
  }

  /** Calls `claim` for each new port, ascending, and returns the new ranges. */
  take(range: PortRange, claim: (port: number) => void): PortRange[] {
    const parts: PortRange[] = [];
    for (let p = this.find(range.start); p <= range.end; p = this.find(p)) {
      let q = p;
      while (q < range.end && this.next[q + 1] === q + 1) q++;
      parts.push({ start: p, end: q });
      for (let x = p; x <= q; x++) {
        this.next[x] = x + 1;
        this.touched.push(x);
        claim(x);
      }
    }
    return parts;
  }

  /** Forgets the app's ports, touching only those it had. */
  reset(): void {
    for (const x of this.touched) this.next[x] = x;
    this.touched.length = 0;
  }
}

interface Claimant {
  app: AppFacts;
  /** Ranks of its outermost prefixes (every address: both families' /0). */
  ranks: number[];
  /** Per position in app.ports: the ports that entry adds to the app. */
  newParts: PortRange[][];
  merged: PortRange[];
}

/** The clash of app `b`'s ports entry (position k in b.ports) with earlier app `a`. */
interface Clash {
  a: number;
  b: number;
  k: number;
}

/** Ports of `parts` that are also in the sorted disjoint `ranges`: how many, and the first. */
function intersect(parts: readonly PortRange[], ranges: readonly PortRange[]): { first: number; count: number } {
  let first = -1;
  let count = 0;
  for (const part of parts) {
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ranges[mid]!.end < part.start) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < ranges.length && ranges[i]!.start <= part.end; i++) {
      const start = Math.max(part.start, ranges[i]!.start);
      const end = Math.min(part.end, ranges[i]!.end);
      if (first < 0) first = start;
      count += end - start + 1;
    }
  }
  return { first, count };
}

/** Why apps a and b may not share a port, given a pair of overlapping prefixes the search found. */
function sharingProblem(a: AppFacts, b: AppFacts, witness: [Prefix, Prefix]): string {
  if (a.addresses === "all" || b.addresses === "all" || a.addresses === "invalid" || b.addresses === "invalid") {
    return "apps may share a port only if both set Addresses that do not overlap";
  }
  let [pa, pb] = witness;
  // Name the first overlapping pair in file order when that is cheap to find.
  if (a.addresses.length * b.addresses.length <= MESSAGE_PAIRS_MAX) {
    search: for (const x of a.addresses) {
      for (const y of b.addresses) {
        if (prefixesOverlap(x, y)) {
          [pa, pb] = [x, y];
          break search;
        }
      }
    }
  }
  return `their Addresses overlap ("${pa.cidr}" and "${pb.cidr}")`;
}

/**
 * Whether apps a and b may share a port by TLS server name: "ok", or why not;
 * undefined when neither names any (the address rule decides).
 */
function nameSharing(a: AppFacts, b: AppFacts): "ok" | string | undefined {
  if (a.serverNames.length === 0 && b.serverNames.length === 0) return undefined;
  const theirs = new Set(b.serverNames);
  const both = a.serverNames.find((n) => theirs.has(n));
  if (both !== undefined) return `both claim the server name ${JSON.stringify(both)}`;
  if (a.acceptProxyProtocol !== b.acceptProxyProtocol) return "apps that share a port by server name must agree on AcceptProxyProtocol";
  return "ok";
}

/** Only call within the limits (limits.ts): the work is linear in the ports all apps cover. */
export function portConflicts(apps: readonly AppFacts[], sink: ProblemCollector): void {
  if (apps.length > MAX_APPS) throw new Error("internal: port conflicts checked beyond the app limit");
  const prefixesOf = (app: AppFacts): readonly Prefix[] => (app.addresses === "all" ? ALL_PREFIXES : app.addresses === "invalid" ? [] : app.addresses);
  const ranks = new PrefixRanks(apps.flatMap((a) => [...prefixesOf(a)]));
  // owners[port]: (claimant, entry position) pairs, flat, in app order.
  const owners: (number[] | undefined)[] = new Array(PORT_MAX + 1);
  const claimants: Claimant[] = [];
  const newPorts = new NewPorts();
  for (const app of apps) {
    if (app.addresses === "invalid") continue;
    const c = claimants.length;
    const newParts = app.ports.map(({ range }, k) => newPorts.take(range, (port) => (owners[port] ??= []).push(c, k)));
    newPorts.reset();
    claimants.push({ app, ranks: ranks.outermost(prefixesOf(app)), newParts, merged: mergeRanges(app.ports.map((p) => p.range)) });
  }

  // Each port's owners' prefixes, sorted: a prefix overlaps exactly the ones still
  // open on the stack when it comes, and within one app none nests in another, so
  // in a valid file the stack never holds two.
  const clashes = new Map<number, Clash>();
  const witnesses = new Map<number, [number, number]>();
  let budget = SEARCH_BUDGET;
  // An item is one number, (rank, claimant, entry position) in fixed bit fields, so
  // a port's items sort as plain numbers and make no garbage.
  const C = MAX_APPS;
  const K = 2 ** 20;
  let items = new Float64Array(64);
  const stack: number[] = [];
  ports: for (let port = 1; port <= PORT_MAX; port++) {
    const own = owners[port];
    if (own === undefined || own.length < 4) continue;
    let n = 0;
    for (let i = 0; i < own.length; i += 2) {
      const c = own[i]!;
      const k = own[i + 1]!;
      for (const rank of claimants[c]!.ranks) {
        if (n === items.length) items = Float64Array.from({ length: n * 2 }, (_, j) => items[j] ?? 0);
        items[n++] = (rank * C + c) * K + k;
      }
    }
    const sorted = items.subarray(0, n).sort();
    stack.length = 0;
    for (const item of sorted) {
      const rank = Math.floor(item / (C * K));
      while (stack.length > 0 && rank > ranks.last[Math.floor(stack[stack.length - 1]! / (C * K))]!) stack.pop();
      const c = Math.floor(item / K) % C;
      for (const open of stack) {
        if (--budget < 0 || clashes.size >= CLASHES_MAX) {
          sink.stoppedCounting();
          break ports;
        }
        const oc = Math.floor(open / K) % C;
        if (oc === c) continue;
        const [a, b] = oc < c ? [open, item] : [item, open];
        const ac = Math.floor(a / K) % C;
        const bc = Math.floor(b / K) % C;
        const bk = b % K;
        const key = (bc * C + ac) * K + bk;
        if (!clashes.has(key)) clashes.set(key, { a: ac, b: bc, k: bk });
        const pair = bc * C + ac;
        if (!witnesses.has(pair)) witnesses.set(pair, [Math.floor(a / (C * K)), Math.floor(b / (C * K))]);
      }
      stack.push(item);
    }
  }

  // In file order: by app, then entry; within an entry by first shared port, then app.
  const sorted = [...clashes.values()].sort((x, y) => x.b - y.b || x.k - y.k || x.a - y.a);
  const reasons = new Map<number, string>();
  for (let i = 0; i < sorted.length; ) {
    if (sink.full) {
      sink.skip(sorted.length - i);
      break;
    }
    let j = i;
    while (j < sorted.length && sorted[j]!.b === sorted[i]!.b && sorted[j]!.k === sorted[i]!.k) j++;
    const group = sorted.slice(i, j).map((clash) => {
      const b = claimants[clash.b]!;
      return { clash, ...intersect(b.newParts[clash.k]!, claimants[clash.a]!.merged) };
    });
    group.sort((x, y) => x.first - y.first || x.clash.a - y.clash.a);
    for (const { clash, first, count } of group) {
      const a = claimants[clash.a]!.app;
      const b = claimants[clash.b]!.app;
      const byName = nameSharing(a, b);
      if (byName === "ok") continue;
      const pair = clash.b * MAX_APPS + clash.a;
      let why = byName ?? reasons.get(pair);
      if (why === undefined) {
        const [ra, rb] = witnesses.get(pair)!;
        why = sharingProblem(a, b, [ranks.prefixes[ra]!, ranks.prefixes[rb]!]);
        reasons.set(pair, why);
      }
      const what = count === 1 ? `port ${first} is` : `${count} ports of this range, from ${first}, are`;
      sink.add({ path: `Apps[${b.index}].Ports[${b.ports[clash.k]!.entry}]`, message: `${what} used by both ${describe(a)} and ${describe(b)}; ${why}` });
    }
    i = j;
  }
}
