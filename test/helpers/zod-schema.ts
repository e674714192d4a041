// The config schema as zod expressed it before config/schema.ts replaced it with its
// own rules (zod cost the supervisor about 3 MiB of heap). Kept, with zod as a dev
// dependency, as the reference that test/config-schema-zod.test.ts compares against.

import { z } from "zod";
import { parsePrefix } from "../../config/addresses.js";
import { MAX_REPORTED_PROBLEMS } from "../../common/errors.js";
import { fail, type Parsed } from "../../config/parsed.js";
import { PORT_ENTRY_HINT, parsePortEntry } from "../../config/ports.js";
import { parseTarget, TARGET_HINT } from "../../config/targets.js";
import { MAX_SERVER_NAMES, parseServerName, SERVER_NAME_HINT } from "../../config/server-names.js";
import {
  BALANCERS,
  MAX_APP_CONNECTIONS,
  MAX_CHECK_INTERVAL_MS,
  MAX_CHECK_TIMEOUT_MS,
  MAX_CLIENT_CONNECTIONS,
  MAX_CONNECT_TIMEOUT_MS,
  MAX_IDLE_TIMEOUT_MS,
  MAX_RISE_FALL,
  MIN_CHECK_INTERVAL_MS,
  PROXY_PROTOCOL_VERSIONS,
} from "../../config/schema.js";

/** zod's "expected array, received undefined" becomes "is required" or "must be …". */
const requiredAs = (what: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? "is required" : `must be ${what}`;

/** The issue param an array check uses to pass on how many element problems it only counted. */
export const OMITTED_PARAM = "omitted";

/**
 * Checks every element of an array with one value parser in a single check, rather
 * than one zod schema per element: a 1 MiB array of bad entries then makes at most
 * MAX_REPORTED_PROBLEMS issues, and one more issue carrying the count of the rest.
 * The output type is what the elements were checked to be.
 */
const eachElement = <T>(parse: (v: unknown) => Parsed<unknown>, error: Parameters<typeof z.array>[1]) =>
  z
    .array(z.unknown(), error)
    .superRefine((values, ctx) => {
      let omitted = 0;
      let reported = 0;
      for (let i = 0; i < values.length; i++) {
        const r = parse(values[i]);
        if (r.ok) continue;
        if (reported < MAX_REPORTED_PROBLEMS) {
          ctx.addIssue({ code: "custom", message: r.error, path: [i] });
          reported++;
        } else omitted++;
      }
      if (omitted > 0) ctx.addIssue({ code: "custom", message: "", params: { [OMITTED_PARAM]: omitted } });
    }) as unknown as z.ZodArray<z.ZodType<T>>;

const parsePortValue = (v: unknown): Parsed<unknown> =>
  typeof v === "number" || typeof v === "string" ? parsePortEntry(v) : fail(PORT_ENTRY_HINT);
const parseTargetValue = (v: unknown): Parsed<unknown> =>
  typeof v === "string" ? parseTarget(v) : fail(TARGET_HINT);
const parseServerNameValue = (v: unknown): Parsed<unknown> =>
  typeof v === "string" ? parseServerName(v) : fail(SERVER_NAME_HINT);
const parseAddressValue = (v: unknown): Parsed<unknown> =>
  typeof v === "string" ? parsePrefix(v) : fail('must be a string such as "127.0.0.1" or "fd00::/64"');

/** An integer number of milliseconds in 1..max, for the timeout keys. */
const milliseconds = (max: number) => {
  const range = `must be 1-${max}`;
  return z
    .number({ error: requiredAs("a number of milliseconds") })
    .int({ error: "must be an integer number of milliseconds" })
    .min(1, { error: range })
    .max(max, { error: range });
};


/** An integer number of connections in 1..max, for the limit keys. */
const connections = (max: number) =>
  z
    .number({ error: requiredAs("a number of connections") })
    .int({ error: "must be an integer number of connections" })
    .min(1, { error: `must be 1-${max}` })
    .max(max, { error: `must be 1-${max}` });

const checkCount = (max: number) => {
  const range = `must be 1-${max}`;
  return z
    .number({ error: requiredAs("a number of checks") })
    .int({ error: "must be an integer number of checks" })
    .min(1, { error: range })
    .max(max, { error: range });
};

const intervalRange = `must be ${MIN_CHECK_INTERVAL_MS}-${MAX_CHECK_INTERVAL_MS}`;

export const HealthCheckSchema = z.strictObject(
  {
    IntervalMs: z
      .number({ error: requiredAs("a number of milliseconds") })
      .int({ error: "must be an integer number of milliseconds" })
      .min(MIN_CHECK_INTERVAL_MS, { error: intervalRange })
      .max(MAX_CHECK_INTERVAL_MS, { error: intervalRange })
      .optional(),
    TimeoutMs: milliseconds(MAX_CHECK_TIMEOUT_MS).optional(),
    Rise: checkCount(MAX_RISE_FALL).optional(),
    Fall: checkCount(MAX_RISE_FALL).optional(),
  },
  { error: 'must be an object such as {"IntervalMs": 2000, "TimeoutMs": 1000, "Rise": 2, "Fall": 3}' },
);


export const AppSchema = z.strictObject(
  {
    Name: z
      .string({ error: requiredAs("a string") })
      .refine((s) => s.trim() !== "", { error: "must not be empty" }),
    Ports: eachElement<number | string>(parsePortValue, { error: requiredAs('an array of ports, e.g. [5001, "6000-6999"]') })
      .min(1, { error: "must list at least one port" }),
    Targets: eachElement<string>(parseTargetValue, { error: requiredAs('an array of "host:port" strings') })
      .min(1, { error: "must list at least one target" }),
    Addresses: eachElement<string>(parseAddressValue, {
      error: requiredAs('an array of addresses or CIDR prefixes, e.g. ["127.0.0.1", "fd00::/64"]'),
    })
      .min(1, { error: "must not be empty; leave Addresses out to answer on every address" })
      .optional(),
    ConnectTimeoutMs: milliseconds(MAX_CONNECT_TIMEOUT_MS).optional(),
    IdleTimeoutMs: milliseconds(MAX_IDLE_TIMEOUT_MS).optional(),
    Balance: z
      .enum(BALANCERS, { error: `must be one of: ${BALANCERS.map((b) => JSON.stringify(b)).join(", ")}` })
      .optional(),
    HealthCheck: HealthCheckSchema.optional(),
    MaxConnections: connections(MAX_APP_CONNECTIONS).optional(),
    MaxConnectionsPerClient: connections(MAX_CLIENT_CONNECTIONS).optional(),
    ProxyProtocol: z.enum(PROXY_PROTOCOL_VERSIONS, { error: 'must be "v1" or "v2"' }).optional(),
    AcceptProxyProtocol: z.boolean({ error: "must be true or false" }).optional(),
    ServerNames: eachElement<string>(parseServerNameValue, { error: requiredAs('an array of TLS server names, e.g. ["api.example.com", "*.example.com"]') })
      .min(1, { error: "must list at least one name; leave ServerNames out for the port's default app" })
      .max(MAX_SERVER_NAMES, { error: `must list at most ${MAX_SERVER_NAMES} names` })
      .optional(),
  },
  { error: "must be an object with Name, Ports and Targets" },
);

const APPS_ERROR = { error: requiredAs("an array of apps") };
const APPS_MIN = { error: "must list at least one app" };
const ROOT_ERROR = { error: 'the document must be a JSON object with an "Apps" array' };

/**
 * The document without looking into the apps: build.ts checks them one at a time,
 * so the issues of 4096 apps are never all held at once.
 */
export const RootSchema = z.strictObject({ Apps: z.array(z.unknown(), APPS_ERROR).min(1, APPS_MIN) }, ROOT_ERROR);
