// Config validation against any bytes: random bytes, random JSON, configs near the
// schema, and valid configs with bytes mutated. parseConfigText must return a Plan
// or throw a ConfigError whose problems each name a path; never another error, and
// never take more than a second. A valid config, re-serialised, gives the same Plan.
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { ConfigError, MAX_REPORTED_PROBLEMS } from "../../common/errors.js";
import { parseConfigText } from "../../config/load.js";
import type { FuzzFailure, FuzzTarget } from "../target.js";

/** One input: the file's bytes, base64. */
export interface ConfigInput {
  bytes: string;
}

/** Longest one input may take; the largest valid files take well under a tenth of this. */
const TIME_LIMIT_MS = 1000;
/** `Apps[1].Ports[2]`, `Pad[0].x`, `Apps[0]["odd key"]`, or "" for the document. */
const PATH = /^(?:[A-Za-z_$][\w$]*|\[(?:\d+|"(?:[^"\\]|\\.)*")\])(?:\.[A-Za-z_$][\w$]*|\[(?:\d+|"(?:[^"\\]|\\.)*")\])*$/;

const bytesOf = (s: string): ConfigInput => ({ bytes: Buffer.from(s).toString("base64") });

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join("."));
const ipv6 = fc.ipV6();
const address = fc.oneof(
  ipv4,
  ipv6,
  fc.tuple(ipv4, fc.integer({ min: -1, max: 40 })).map(([a, n]) => `${a}/${n}`),
  fc.tuple(ipv6, fc.integer({ min: -1, max: 130 })).map(([a, n]) => `${a}/${n}`),
  fc.constantFrom("0.0.0.0/0", "::/0", "127.0.0.1", "::1", "[::1]", "fe80::1%eth0", "01.2.3.4", "10.0.0.0/8", "1.2.3"),
  fc.string({ maxLength: 12 }),
);
const port = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 65535 }) },
  fc.integer({ min: -10, max: 70000 }),
  fc.tuple(fc.integer({ min: 0, max: 65540 }), fc.integer({ min: 0, max: 65540 })).map(([a, b]) => `${a}-${b}`),
  fc.tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 200 })).map(([a, n]) => `${a} - ${a + n}`),
  fc.constantFrom("1-65535", "5001", " 80 ", "80-", "-80", "1e3", 1.5, 1e21, -0, "0x50"),
  fc.jsonValue({ maxDepth: 1 }),
);
const host = fc.oneof(fc.domain(), ipv4, ipv6.map((a) => `[${a}]`), fc.constantFrom("my_db", "a..b", "-x", "1.2.3.400", ""), fc.string({ maxLength: 10 }));
/** A target's options after its address: " weight=N", well-formed or not. */
const targetOptions = fc.oneof(
  { weight: 3, arbitrary: fc.constant("") },
  fc.integer({ min: -1, max: 300 }).map((w) => ` weight=${w}`),
  fc.constantFrom(" weight=", " weight=2 weight=3", "\tweight=1", " Weight=2", " weight=1.5", " weight=0x10", " foo=1", " "),
);
const target = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(host, fc.integer({ min: -1, max: 70000 }), targetOptions).map(([h, p, o]) => `${h}:${p}${o}`) },
  fc.string({ maxLength: 16 }),
  fc.jsonValue({ maxDepth: 1 }),
);
const app = fc.record(
  {
    Name: fc.oneof({ weight: 4, arbitrary: fc.constantFrom("a", "b", "c", "d") }, fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 })),
    Ports: fc.oneof({ weight: 4, arbitrary: fc.array(port, { maxLength: 6 }) }, fc.jsonValue({ maxDepth: 1 })),
    Targets: fc.oneof({ weight: 4, arbitrary: fc.array(target, { maxLength: 3 }) }, fc.jsonValue({ maxDepth: 1 })),
    Addresses: fc.oneof({ weight: 4, arbitrary: fc.array(address, { maxLength: 4 }) }, fc.jsonValue({ maxDepth: 1 })),
    ConnectTimeoutMs: fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.double(), fc.jsonValue({ maxDepth: 0 })),
    IdleTimeoutMs: fc.oneof(fc.integer({ min: -1, max: 700_000_000 }), fc.jsonValue({ maxDepth: 0 })),
    Balance: fc.oneof(fc.constantFrom("round-robin", "random", "least-connections", "power-of-two", "source-hash"), fc.string({ maxLength: 12 })),
    HealthCheck: fc.oneof(
      { weight: 3, arbitrary: fc.record({ IntervalMs: fc.integer({ min: 0, max: 4_000_000 }), TimeoutMs: fc.integer({ min: 0, max: 70_000 }), Rise: fc.integer({ min: 0, max: 120 }), Fall: fc.integer({ min: 0, max: 120 }), interval: fc.jsonValue({ maxDepth: 0 }) }, { requiredKeys: [] }) },
      fc.jsonValue({ maxDepth: 1 }),
    ),
    MaxConnections: fc.oneof(fc.integer({ min: -1, max: 20_000_000 }), fc.double(), fc.jsonValue({ maxDepth: 0 })),
    MaxConnectionsPerClient: fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.double(), fc.jsonValue({ maxDepth: 0 })),
    ports: fc.jsonValue({ maxDepth: 1 }),
    ["__proto__"]: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);
/** Mostly well-formed: the required keys present and plausible. */
const validish = fc.record({
  Name: fc.string({ minLength: 1, maxLength: 8 }),
  Ports: fc.array(fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.nat(300)).map(([a, n]) => `${a}-${Math.min(65535, a + n)}`)), { minLength: 1, maxLength: 6 }),
  Targets: fc.array(fc.tuple(fc.domain(), fc.integer({ min: 1, max: 65535 }), fc.option(fc.integer({ min: 1, max: 256 }), { nil: undefined })).map(([h, p, w]) => `${h}:${p}${w === undefined ? "" : ` weight=${w}`}`), { minLength: 1, maxLength: 3 }),
  Addresses: fc.option(fc.array(fc.oneof(ipv4, ipv6, fc.tuple(ipv4, fc.nat(32)).map(([a, n]) => `${a}/${n}`)), { minLength: 1, maxLength: 3 }), { nil: undefined }),
}).map((a) => (a.Addresses === undefined ? { Name: a.Name, Ports: a.Ports, Targets: a.Targets } : a));
const config = fc.oneof(
  fc.record({ Apps: fc.array(app, { maxLength: 5 }) }, { requiredKeys: [] }).map((c) => JSON.stringify(c)),
  fc.array(validish, { minLength: 1, maxLength: 5 }).map((apps) => JSON.stringify({ Apps: apps }, null, 2)),
);
/** A byte edit of a config: delete, insert, duplicate or replace a slice. */
const mutated = fc
  .tuple(config, fc.array(fc.tuple(fc.nat(), fc.nat(8), fc.constantFrom("del", "ins", "dup", "set"), fc.string({ maxLength: 3 })), { minLength: 1, maxLength: 4 }))
  .map(([text, edits]) => {
    let b = Buffer.from(text);
    for (const [at, n, op, s] of edits) {
      const i = b.length === 0 ? 0 : at % b.length;
      const ins = Buffer.from(s);
      if (op === "del") b = Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
      else if (op === "ins") b = Buffer.concat([b.subarray(0, i), ins, b.subarray(i)]);
      else if (op === "dup") b = Buffer.concat([b.subarray(0, i + n), b.subarray(i)]);
      else b = Buffer.concat([b.subarray(0, i), ins, b.subarray(i + ins.length)]);
    }
    return { bytes: b.toString("base64") };
  });

export const configInput: fc.Arbitrary<ConfigInput> = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((a) => ({ bytes: Buffer.from(a).toString("base64") })),
  fc.json({ maxDepth: 4 }).map(bytesOf),
  config.map(bytesOf),
  { weight: 2, arbitrary: mutated },
);

function isConfigInput(input: unknown): input is ConfigInput {
  return typeof input === "object" && input !== null && typeof (input as ConfigInput).bytes === "string";
}

function parseTimed(text: Buffer | string): { plan?: unknown; error?: unknown; ms: number } {
  const started = performance.now();
  try {
    const plan = parseConfigText(text);
    return { plan, ms: performance.now() - started };
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
}

function checkError(error: unknown): void {
  if (!(error instanceof ConfigError)) throw new Error(`threw something other than a ConfigError: ${(error as Error)?.stack ?? String(error)}`);
  if (error.problems.length === 0) throw new Error("ConfigError without problems");
  if (error.problems.length > MAX_REPORTED_PROBLEMS + 1) throw new Error(`${error.problems.length} problems listed; the cap is ${MAX_REPORTED_PROBLEMS}`);
  for (const p of error.problems) {
    if (typeof p.message !== "string" || p.message === "") throw new Error(`problem at ${JSON.stringify(p.path)} without a message`);
    if (p.path !== "" && !PATH.test(p.path)) throw new Error(`problem path ${JSON.stringify(p.path)} is not a path`);
  }
}

/** The property, for one input: throws with the reason if it fails. */
export function checkConfigInput(input: ConfigInput): void {
  const bytes = Buffer.from(input.bytes, "base64");
  const first = parseTimed(bytes);
  if (first.ms > TIME_LIMIT_MS) throw new Error(`took ${Math.round(first.ms)} ms (limit ${TIME_LIMIT_MS} ms)`);
  if (first.plan === undefined) return checkError(first.error);
  // Valid: the value re-serialised must validate to the same Plan.
  const text = bytes.toString("utf8").replace(/^\uFEFF/, "");
  const again = parseTimed(JSON.stringify(JSON.parse(text)));
  if (again.plan === undefined) throw new Error(`valid, but re-serialised it is not: ${(again.error as Error).message}`);
  if (!isDeepStrictEqual(first.plan, again.plan)) throw new Error("re-serialised, the config gives another Plan");
}

export const configTarget: FuzzTarget = {
  name: "config",
  description: "any bytes → parseConfigText: a Plan or a ConfigError with path-named problems, within 1 s; a valid config re-serialised gives the same Plan",
  async run({ timeLimitMs, seed }) {
    const deadline = Date.now() + timeLimitMs;
    const failures: FuzzFailure[] = [];
    const seen = new Set<string>();
    let runs = 0;
    let nextSeed = seed ?? Date.now();
    // fast-check stops at a failure; run again with the next seed until time is up.
    while (Date.now() < deadline && failures.length < 10) {
      const reasons = new Map<ConfigInput, string>();
      const details = fc.check(
        fc.property(configInput, (input) => {
          runs++;
          try {
            checkConfigInput(input);
          } catch (err) {
            reasons.set(input, (err as Error).message);
            throw err;
          }
        }),
        { seed: nextSeed++, numRuns: 10_000_000, interruptAfterTimeLimit: Math.max(deadline - Date.now(), 50) },
      );
      if (!details.failed || details.counterexample === null) continue;
      const input = details.counterexample[0];
      const reason = reasons.get(input) ?? String((details.errorInstance as Error)?.message ?? details.errorInstance);
      // One stored case per kind of failure: the same bug found again is not news.
      const kind = reason.replace(/\d+/g, "N").slice(0, 120);
      if (seen.has(kind)) continue;
      seen.add(kind);
      failures.push({ input, reason });
    }
    return { runs, failures };
  },
  async replay(input) {
    if (!isConfigInput(input)) throw new Error("not a config input: expected { bytes: base64 }");
    checkConfigInput(input);
  },
};

export default configTarget;
