// What the data path can hold, checked by range arithmetic before anything walks
// ports: BPF steering has one sockmap slot per app and one port-map entry per
// (port, address prefix) of each app (native/steering.h). Ports mode shares the
// limits, so a config valid in one mode is valid in the other. The limits also
// bound the work of the checks that do walk ports (conflicts.ts) and of the Plan.

import type { ConfigProblem } from "../common/errors.js";
import type { AppFacts } from "./conflicts.js";
import { portCount } from "./ports.js";

/** STEER_SOCKETS_MAX in native/steering.h. */
export const MAX_APPS = 4096;
/** STEER_PORTS_MAX in native/steering.h. */
export const MAX_PORT_BINDINGS = 262_144;

const n = (x: number): string => x.toLocaleString("en-US");

/** Address prefixes the app is bound on: both families when Addresses is absent. */
export function prefixCount(app: AppFacts): number {
  if (app.addresses === "all") return 2;
  if (app.addresses === "invalid") return 1;
  return new Set(app.addresses.map((p) => p.cidr)).size;
}

const describe = (a: AppFacts): string =>
  a.name === undefined ? `Apps[${a.index}]` : `app ${JSON.stringify(a.name)} (Apps[${a.index}])`;

/**
 * @param appCount how many apps the file lists; `apps` are the facts of those checked
 *   (at most MAX_APPS of them).
 */
export function limitProblems(appCount: number, apps: readonly AppFacts[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (appCount > MAX_APPS) {
    problems.push({
      path: "Apps",
      message: `lists ${n(appCount)} apps; at most ${n(MAX_APPS)} are allowed (the steering map's size); only the first ${n(MAX_APPS)} were checked`,
    });
  }
  let total = 0;
  let largest: { app: AppFacts; ports: number; prefixes: number } | undefined;
  for (const app of apps) {
    const ports = portCount(app.ports.map((p) => p.range));
    const prefixes = prefixCount(app);
    total += ports * prefixes;
    if (largest === undefined || ports * prefixes > largest.ports * largest.prefixes) largest = { app, ports, prefixes };
  }
  if (total > MAX_PORT_BINDINGS && largest !== undefined) {
    const { app, ports, prefixes } = largest;
    problems.push({
      path: "Apps",
      message:
        `the apps listen on ${n(total)} (port, address) pairs; at most ${n(MAX_PORT_BINDINGS)} are allowed (the steering map's size); ` +
        `the most is ${describe(app)} with ${n(ports * prefixes)} (${n(ports)} ports × ${n(prefixes)} address${prefixes === 1 ? "" : "es"})`,
    });
  }
  return problems;
}
