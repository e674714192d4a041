// The config file, Fly.io hiring-project format, accepted as is. Everything added to
// it is optional, PascalCase like the rest, with a safe default. Every object is
// strict: a misspelt optional key would otherwise be ignored and its default used.
//
// The schema only validates; it never transforms, so `ConfigFile` is the shape of the
// file itself. Normalising (expanding ranges, parsing targets) happens in build.ts.

import { z } from "zod";
import { parsePrefix } from "./addresses.js";
import type { Parsed } from "./parsed.js";
import { PORT_ENTRY_HINT, parsePortEntry } from "./ports.js";
import { parseTarget } from "./targets.js";

export const BALANCERS = ["round-robin"] as const;
export const DEFAULT_BALANCE: (typeof BALANCERS)[number] = "round-robin";
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
export const MAX_CONNECT_TIMEOUT_MS = 60_000;
/** A week: longer than any timer a worker could hold (setTimeout tops out near 24.8 days) needs no limit at all. */
export const MAX_IDLE_TIMEOUT_MS = 604_800_000;

/** zod's "expected array, received undefined" becomes "is required" or "must be …". */
const requiredAs = (what: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? "is required" : `must be ${what}`;

/** Runs one of the value parsers as a zod check, so its message lands at the value's path. */
const checkedBy =
  <T>(parse: (v: T) => Parsed<unknown>) =>
  (value: T, ctx: z.RefinementCtx): void => {
    const r = parse(value);
    if (!r.ok) ctx.addIssue({ code: "custom", message: r.error });
  };

const PortEntry = z.union([z.number(), z.string()], { error: PORT_ENTRY_HINT }).superRefine(checkedBy(parsePortEntry));

const TargetEntry = z.string({ error: 'must be a "host:port" string' }).superRefine(checkedBy(parseTarget));

const AddressEntry = z
  .string({ error: 'must be a string such as "127.0.0.1" or "fd00::/64"' })
  .superRefine(checkedBy(parsePrefix));

/** An integer number of milliseconds in 1..max, for the timeout keys. */
const milliseconds = (max: number) => {
  const range = `must be 1-${max}`;
  return z
    .number({ error: requiredAs("a number of milliseconds") })
    .int({ error: "must be an integer number of milliseconds" })
    .min(1, { error: range })
    .max(max, { error: range });
};

export const AppSchema = z.strictObject(
  {
    Name: z
      .string({ error: requiredAs("a string") })
      .refine((s) => s.trim() !== "", { error: "must not be empty" }),
    Ports: z
      .array(PortEntry, { error: requiredAs('an array of ports, e.g. [5001, "6000-6999"]') })
      .min(1, { error: "must list at least one port" }),
    Targets: z
      .array(TargetEntry, { error: requiredAs('an array of "host:port" strings') })
      .min(1, { error: "must list at least one target" }),
    Addresses: z
      .array(AddressEntry, { error: requiredAs('an array of addresses or CIDR prefixes, e.g. ["127.0.0.1", "fd00::/64"]') })
      .min(1, { error: "must not be empty; leave Addresses out to answer on every address" })
      .optional(),
    ConnectTimeoutMs: milliseconds(MAX_CONNECT_TIMEOUT_MS).optional(),
    IdleTimeoutMs: milliseconds(MAX_IDLE_TIMEOUT_MS).optional(),
    Balance: z
      .enum(BALANCERS, { error: `must be one of: ${BALANCERS.map((b) => JSON.stringify(b)).join(", ")}` })
      .optional(),
  },
  { error: "must be an object with Name, Ports and Targets" },
);

export const ConfigSchema = z.strictObject(
  {
    Apps: z.array(AppSchema, { error: requiredAs("an array of apps") }).min(1, { error: "must list at least one app" }),
  },
  { error: 'the document must be a JSON object with an "Apps" array' },
);

export type ConfigFile = z.infer<typeof ConfigSchema>;
export type AppConfig = z.infer<typeof AppSchema>;

const ROOT_KEYS = Object.keys(ConfigSchema.shape);
const APP_KEYS = Object.keys(AppSchema.shape);

/** The keys allowed in the strict object at `path` (the root, or one app). */
export function allowedKeysAt(path: readonly PropertyKey[]): readonly string[] {
  return path.length === 0 ? ROOT_KEYS : APP_KEYS;
}
