// The config file, Fly.io hiring-project format, accepted as is. Everything added to
// it is optional, PascalCase like the rest, with a safe default. Every object is
// strict: a misspelt optional key would otherwise be ignored and its default used.
//
// The schema only validates; it never transforms, so `ConfigFile` is the shape of the
// file itself. Normalising (expanding ranges, parsing targets) happens in build.ts.
//
// Checked by a few rules written here rather than by a schema library: zod, which
// did this before, cost the long-lived supervisor about 3 MiB of heap for its
// ~850 KB of code. Its issues are kept as they were (messages, order, which checks
// still run after one failed); test/config-schema-zod.test.ts compares the two.

import { parsePrefix } from "./addresses.js";
import { MAX_REPORTED_PROBLEMS } from "../common/errors.js";
import { fail, type Parsed } from "./parsed.js";
import { PORT_ENTRY_HINT, parsePortEntry } from "./ports.js";
import { parseTarget, TARGET_HINT } from "./targets.js";
import { MAX_SERVER_NAMES, parseServerName, SERVER_NAME_HINT } from "./server-names.js";

export const BALANCERS = ["round-robin", "random", "least-connections", "power-of-two", "source-hash"] as const;
export const DEFAULT_BALANCE: (typeof BALANCERS)[number] = "round-robin";
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
export const MAX_CONNECT_TIMEOUT_MS = 60_000;
/** A week: longer than any timer a worker could hold (setTimeout tops out near 24.8 days) needs no limit at all. */
export const MAX_IDLE_TIMEOUT_MS = 604_800_000;

/** Active health checks (HealthCheck), HAProxy's `inter`, `timeout check`, `rise`, `fall`. */
export const DEFAULT_HEALTH_CHECK = { intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 3 } as const;
/** Below this an interval is a probe storm against every target, not a check. */
export const MIN_CHECK_INTERVAL_MS = 100;
export const MAX_CHECK_INTERVAL_MS = 3_600_000;
export const MAX_CHECK_TIMEOUT_MS = 60_000;
export const MAX_RISE_FALL = 100;

/** Versions of the PROXY protocol header written to targets (worker/proxy-protocol.ts). */
export const PROXY_PROTOCOL_VERSIONS = ["v1", "v2"] as const;

/** MaxConnections: far above what one machine carries, so only a typo is refused. */
export const MAX_APP_CONNECTIONS = 10_000_000;
/** MaxConnectionsPerClient: the shared table counts a client's connections in 16 bits (native/counters.c). */
export const MAX_CLIENT_CONNECTIONS = 65_535;

export interface HealthCheckConfig {
  IntervalMs?: number;
  TimeoutMs?: number;
  Rise?: number;
  Fall?: number;
}

export interface AppConfig {
  Name: string;
  Ports: (number | string)[];
  Targets: string[];
  Addresses?: string[];
  ConnectTimeoutMs?: number;
  IdleTimeoutMs?: number;
  Balance?: (typeof BALANCERS)[number];
  HealthCheck?: HealthCheckConfig;
  MaxConnections?: number;
  MaxConnectionsPerClient?: number;
  ProxyProtocol?: (typeof PROXY_PROTOCOL_VERSIONS)[number];
  AcceptProxyProtocol?: boolean;
  ServerNames?: string[];
}

export interface ConfigFile {
  Apps: AppConfig[];
}

/**
 * One problem, at its path below the value checked. `keys`: the unknown keys of a
 * strict object (one problem each, issues.ts); `omitted`: element problems only counted.
 */
export interface Issue {
  path: PropertyKey[];
  message: string;
  keys?: string[];
  omitted?: number;
}

/** Checks a value that is present; adds its issues. */
type Rule = (value: unknown, path: PropertyKey[], issues: Issue[]) => void;
interface Field {
  rule: Rule;
  optional?: boolean;
}

/** "expected a number, received undefined" becomes "is required" or "must be …". */
const requiredAs = (what: string, value: unknown): string => (value === undefined ? "is required" : `must be ${what}`);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** An object with only the keys of `shape`, checked in its order; the unknown keys come last, in one issue. */
function strictObject(shape: Record<string, Field>, error: string): Rule {
  return (value, path, issues) => {
    if (!isObject(value)) {
      issues.push({ path, message: error });
      return;
    }
    for (const [key, field] of Object.entries(shape)) {
      const v = value[key];
      if (v === undefined && field.optional) continue;
      field.rule(v, [...path, key], issues);
    }
    const unknown = Object.keys(value).filter((k) => !Object.hasOwn(shape, k));
    if (unknown.length > 0) issues.push({ path, message: error, keys: unknown });
  };
}

/**
 * An integer in min..max. A fraction stops there; an integer beyond 2^53 is
 * reported as not one and as out of range (zod's safe-integer check did both).
 */
function integer(what: string, wrongKind: string, min: number, max: number, range = `must be ${min}-${max}`): Rule {
  return (value, path, issues) => {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      issues.push({ path, message: requiredAs(what, value) });
      return;
    }
    if (!Number.isInteger(value)) {
      issues.push({ path, message: wrongKind });
      return;
    }
    if (!Number.isSafeInteger(value)) issues.push({ path, message: wrongKind });
    if (value < min || value > max) issues.push({ path, message: range });
  };
}

/** An integer number of milliseconds in min..max, for the timeout and interval keys. */
const milliseconds = (max: number, min = 1): Rule => integer("a number of milliseconds", "must be an integer number of milliseconds", min, max);
/** An integer number of connections in 1..max, for the limit keys. */
const connections = (max: number): Rule => integer("a number of connections", "must be an integer number of connections", 1, max);
/** An integer count in 1..max, for Rise and Fall. */
const checkCount = (max: number): Rule => integer("a number of checks", "must be an integer number of checks", 1, max);

const oneOf = (allowed: readonly string[], error: string): Rule => (value, path, issues) => {
  if (!allowed.includes(value as string)) issues.push({ path, message: error });
};

interface Bounds {
  min: number;
  tooFew: string;
  max?: number;
  tooMany?: string;
}

/**
 * The length bounds, checked as zod's length checks did: on anything with a
 * `length`, also after "must be an array" (`""` is also "must list at least
 * one port"); a string counted in code points.
 */
function checkLength(value: unknown, path: PropertyKey[], issues: Issue[], bounds: Bounds): void {
  if (value === null || value === undefined) return;
  const length: unknown = typeof value === "string" ? [...value].length : (value as { length?: unknown }).length;
  if (length === undefined) return;
  // Compared as they come: a `length` that is not a number (an object's key) fails both.
  if (!((length as number) >= bounds.min)) issues.push({ path, message: bounds.tooFew });
  if (bounds.max !== undefined && !((length as number) <= bounds.max)) issues.push({ path, message: bounds.tooMany! });
}

/**
 * Checks every element of an array with one value parser: a 1 MiB array of bad
 * entries makes at most MAX_REPORTED_PROBLEMS issues, and one more carrying the
 * count of the rest. The length is checked after the elements, whatever they were.
 */
function eachElement(parse: (v: unknown) => Parsed<unknown>, what: string, bounds: Bounds): Rule {
  return (value, path, issues) => {
    if (!Array.isArray(value)) {
      issues.push({ path, message: requiredAs(what, value) });
      checkLength(value, path, issues, bounds);
      return;
    }
    let omitted = 0;
    let reported = 0;
    for (let i = 0; i < value.length; i++) {
      const r = parse(value[i]);
      if (r.ok) continue;
      if (reported < MAX_REPORTED_PROBLEMS) {
        issues.push({ path: [...path, i], message: r.error });
        reported++;
      } else omitted++;
    }
    if (omitted > 0) issues.push({ path, message: "", omitted });
    checkLength(value, path, issues, bounds);
  };
}

const parsePortValue = (v: unknown): Parsed<unknown> =>
  typeof v === "number" || typeof v === "string" ? parsePortEntry(v) : fail(PORT_ENTRY_HINT);
const parseTargetValue = (v: unknown): Parsed<unknown> =>
  typeof v === "string" ? parseTarget(v) : fail(TARGET_HINT);
const parseServerNameValue = (v: unknown): Parsed<unknown> =>
  typeof v === "string" ? parseServerName(v) : fail(SERVER_NAME_HINT);
const parseAddressValue = (v: unknown): Parsed<unknown> =>
  typeof v === "string" ? parsePrefix(v) : fail('must be a string such as "127.0.0.1" or "fd00::/64"');

const name: Rule = (value, path, issues) => {
  if (typeof value !== "string") issues.push({ path, message: requiredAs("a string", value) });
  else if (value.trim() === "") issues.push({ path, message: "must not be empty" });
};

const boolean: Rule = (value, path, issues) => {
  if (typeof value !== "boolean") issues.push({ path, message: "must be true or false" });
};

const HEALTH_CHECK_SHAPE: Record<keyof HealthCheckConfig, Field> = {
  IntervalMs: { rule: milliseconds(MAX_CHECK_INTERVAL_MS, MIN_CHECK_INTERVAL_MS), optional: true },
  TimeoutMs: { rule: milliseconds(MAX_CHECK_TIMEOUT_MS), optional: true },
  Rise: { rule: checkCount(MAX_RISE_FALL), optional: true },
  Fall: { rule: checkCount(MAX_RISE_FALL), optional: true },
};
const healthCheck = strictObject(HEALTH_CHECK_SHAPE, 'must be an object such as {"IntervalMs": 2000, "TimeoutMs": 1000, "Rise": 2, "Fall": 3}');

const APP_SHAPE: Record<keyof AppConfig, Field> = {
  Name: { rule: name },
  Ports: { rule: eachElement(parsePortValue, 'an array of ports, e.g. [5001, "6000-6999"]', { min: 1, tooFew: "must list at least one port" }) },
  Targets: { rule: eachElement(parseTargetValue, 'an array of "host:port" strings', { min: 1, tooFew: "must list at least one target" }) },
  Addresses: {
    rule: eachElement(parseAddressValue, 'an array of addresses or CIDR prefixes, e.g. ["127.0.0.1", "fd00::/64"]', {
      min: 1,
      tooFew: "must not be empty; leave Addresses out to answer on every address",
    }),
    optional: true,
  },
  ConnectTimeoutMs: { rule: milliseconds(MAX_CONNECT_TIMEOUT_MS), optional: true },
  IdleTimeoutMs: { rule: milliseconds(MAX_IDLE_TIMEOUT_MS), optional: true },
  Balance: { rule: oneOf(BALANCERS, `must be one of: ${BALANCERS.map((b) => JSON.stringify(b)).join(", ")}`), optional: true },
  HealthCheck: { rule: healthCheck, optional: true },
  MaxConnections: { rule: connections(MAX_APP_CONNECTIONS), optional: true },
  MaxConnectionsPerClient: { rule: connections(MAX_CLIENT_CONNECTIONS), optional: true },
  ProxyProtocol: { rule: oneOf(PROXY_PROTOCOL_VERSIONS, 'must be "v1" or "v2"'), optional: true },
  AcceptProxyProtocol: { rule: boolean, optional: true },
  ServerNames: {
    rule: eachElement(parseServerNameValue, 'an array of TLS server names, e.g. ["api.example.com", "*.example.com"]', {
      min: 1,
      tooFew: "must list at least one name; leave ServerNames out for the port's default app",
      max: MAX_SERVER_NAMES,
      tooMany: `must list at most ${MAX_SERVER_NAMES} names`,
    }),
    optional: true,
  },
};
const app = strictObject(APP_SHAPE, "must be an object with Name, Ports and Targets");

/** The document without looking into the apps: build.ts checks them one at a time (checkApp). */
const ROOT_SHAPE: Record<keyof ConfigFile, Field> = {
  Apps: {
    rule: (value, path, issues) => {
      if (!Array.isArray(value)) issues.push({ path, message: requiredAs("an array of apps", value) });
      checkLength(value, path, issues, { min: 1, tooFew: "must list at least one app" });
    },
  },
};
const root = strictObject(ROOT_SHAPE, 'the document must be a JSON object with an "Apps" array');

/** The document's own problems, not those of its apps; none means it has an Apps array. */
export function checkRoot(value: unknown): Issue[] {
  const issues: Issue[] = [];
  root(value, [], issues);
  return issues;
}

/** One app's problems, at paths below the app; none means it is an AppConfig. */
export function checkApp(value: unknown): Issue[] {
  const issues: Issue[] = [];
  app(value, [], issues);
  return issues;
}

const ROOT_KEYS = Object.keys(ROOT_SHAPE);
const APP_KEYS = Object.keys(APP_SHAPE);
const HEALTH_CHECK_KEYS = Object.keys(HEALTH_CHECK_SHAPE);

/** The keys allowed in the strict object at `path` (the root, one app, or an app's HealthCheck). */
export function allowedKeysAt(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return ROOT_KEYS;
  return path[path.length - 1] === "HealthCheck" ? HEALTH_CHECK_KEYS : APP_KEYS;
}
