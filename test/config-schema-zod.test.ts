// config/schema.ts's own rules against the zod schema they replaced
// (helpers/zod-schema.ts): for any value, the same issues in the same order,
// with the same paths and messages. Pure unit tests.

import test from "ava";
import fc from "fast-check";
import { MAX_REPORTED_PROBLEMS } from "../common/errors.js";
import { checkApp, checkRoot, type Issue } from "../config/schema.js";
import { configInput } from "../fuzz/targets/config.js";
import { AppSchema, OMITTED_PARAM, RootSchema } from "./helpers/zod-schema.js";

/** zod's issues in config/schema.ts's terms. */
function zodIssues(schema: typeof AppSchema | typeof RootSchema, value: unknown): Issue[] {
  const r = schema.safeParse(value);
  if (r.success) return [];
  return r.error.issues.map((issue) => {
    const out: Issue = { path: [...issue.path], message: issue.message };
    if (issue.code === "unrecognized_keys") out.keys = [...issue.keys];
    if (issue.code === "custom" && typeof issue.params?.[OMITTED_PARAM] === "number") {
      out.message = "";
      out.omitted = issue.params[OMITTED_PARAM] as number;
    }
    return out;
  });
}

function same(value: unknown): { ok: boolean; ours: Issue[]; theirs: Issue[] } {
  const ours = [...checkRoot(value)];
  const theirs = [...zodIssues(RootSchema, value)];
  const apps = typeof value === "object" && value !== null ? (value as { Apps?: unknown }).Apps : undefined;
  for (const app of Array.isArray(apps) ? apps : [value]) {
    ours.push(...checkApp(app));
    theirs.push(...zodIssues(AppSchema, app));
  }
  return { ok: JSON.stringify(ours) === JSON.stringify(theirs), ours, theirs };
}

const base = { Name: "a", Ports: [1], Targets: ["127.0.0.1:5"] };
const numberKeys = ["ConnectTimeoutMs", "IdleTimeoutMs", "MaxConnections", "MaxConnectionsPerClient"] as const;
const edgeNumbers = [0, 1, -1, 0.5, -0.5, 1.5, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 1e20, -1e20, 1e21, Infinity, -Infinity, NaN, -0, 60_000, 60_001, 65_535, 65_536, 604_800_000, 604_800_001, 10_000_000, 10_000_001, 99, 100, 3_600_000, 3_600_001];
const odd = [null, true, false, "", " ", "1", [], {}, [1], { a: 1 }, undefined];

test("edge cases: the same issues as zod", (t) => {
  const cases: unknown[] = [
    ...odd,
    { Apps: [] },
    { Apps: [], x: 1 },
    { x: 1 },
    JSON.parse('{"__proto__": 1, "Apps": [1]}'),
    JSON.parse('{"__proto__": {"Name": "x"}, "constructor": 1, "Ports": [1], "Targets": ["127.0.0.1:5"]}'),
    { ...base, Name: "  " },
    { ...base, Name: 5 },
    { zz: 1, ...base, Name: 5, yy: 2, Ports: [], Targets: "x" },
    { Ports: [0, "x", 1.5], Targets: [] },
    { ...base, ServerNames: [] },
    { ...base, ServerNames: Array(1025).fill("a.com") },
    { ...base, ServerNames: Array(1025).fill(1) },
    { ...base, Ports: Array(MAX_REPORTED_PROBLEMS * 3).fill(0) },
    { ...base, Addresses: [] },
    // zod's length checks also ran on what is not an array but has a length.
    { Apps: "" },
    { Apps: "x" },
    { Apps: { length: 0 } },
    ...[0, 1, "x", null, true, [], 2000].flatMap((length) => [{ ...base, Ports: { length } }, { ...base, ServerNames: { length } }]),
    { ...base, Ports: "", Targets: "", Addresses: "", ServerNames: "" },
    { ...base, ServerNames: "a".repeat(1025) },
    { ...base, ServerNames: "\u{1F600}".repeat(1000) },
    { ...base, ServerNames: "\u{1F600}".repeat(1025) },
    { ...base, ServerNames: "\uD83D".repeat(1025) },
    { ...base, Balance: "x", ProxyProtocol: 1, AcceptProxyProtocol: "true" },
    { ...base, Balance: null, ProxyProtocol: null, AcceptProxyProtocol: null, HealthCheck: null },
    { ...base, HealthCheck: { IntervalMs: 5, Rise: 0, Fall: 1000, x: 1 } },
    { ...base, HealthCheck: [] },
    { ...base, HealthCheck: {} },
    ...odd.map((v) => ({ ...base, ...Object.fromEntries(Object.keys(base).map((k) => [k, v])) })),
    ...odd.flatMap((v) => numberKeys.map((k) => ({ ...base, [k]: v }))),
    ...edgeNumbers.flatMap((n) => [
      ...numberKeys.map((k) => ({ ...base, [k]: n })),
      { ...base, HealthCheck: { IntervalMs: n, TimeoutMs: n, Rise: n, Fall: n } },
    ]),
  ];
  for (const value of cases) {
    const r = same({ Apps: [value] });
    t.deepEqual(r.ours, r.theirs, JSON.stringify(value)?.slice(0, 200));
    const asRoot = same(value);
    t.deepEqual(asRoot.ours, asRoot.theirs, `as the document: ${JSON.stringify(value)?.slice(0, 200)}`);
  }
});

test("random configs (the fuzz target's inputs, as JSON): the same issues as zod", (t) => {
  const numbers = fc.oneof(fc.constantFrom(...edgeNumbers), fc.double(), fc.integer(), fc.jsonValue({ maxDepth: 1 }));
  const app = fc.record(
    {
      ...Object.fromEntries(numberKeys.map((k) => [k, numbers])),
      HealthCheck: fc.oneof(fc.record({ IntervalMs: numbers, TimeoutMs: numbers, Rise: numbers, Fall: numbers, extra: numbers }, { requiredKeys: [] }), fc.jsonValue({ maxDepth: 1 })),
      Name: fc.oneof(fc.string({ maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
      Ports: fc.oneof(fc.array(fc.oneof(numbers, fc.string({ maxLength: 6 }))), fc.jsonValue({ maxDepth: 1 })),
      Targets: fc.oneof(fc.constant(["127.0.0.1:5"]), fc.array(fc.jsonValue({ maxDepth: 1 })), fc.jsonValue({ maxDepth: 1 })),
      Balance: fc.oneof(fc.constantFrom("random", "source-hash", "x"), fc.jsonValue({ maxDepth: 1 })),
      ProxyProtocol: fc.oneof(fc.constantFrom("v1", "v2", "v3"), fc.jsonValue({ maxDepth: 1 })),
      AcceptProxyProtocol: fc.jsonValue({ maxDepth: 1 }),
      ServerNames: fc.oneof(fc.array(fc.oneof(fc.domain(), fc.jsonValue({ maxDepth: 0 }))), fc.jsonValue({ maxDepth: 1 })),
      Addresses: fc.oneof(fc.array(fc.oneof(fc.ipV4(), fc.string({ maxLength: 5 }))), fc.jsonValue({ maxDepth: 1 })),
      other: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  );
  const fromFuzz = configInput
    .map((input) => {
      try {
        return JSON.parse(Buffer.from(input.bytes, "base64").toString("utf8")) as unknown;
      } catch {
        return undefined;
      }
    })
    .filter((v) => v !== undefined);
  const value = fc.oneof(fromFuzz, fc.record({ Apps: fc.array(app, { maxLength: 3 }) }, { requiredKeys: [] }), fc.jsonValue({ maxDepth: 3 }));
  fc.assert(
    fc.property(value, (v) => {
      const r = same(v);
      if (!r.ok) throw new Error(`differ for ${JSON.stringify(v)}:\nours   ${JSON.stringify(r.ours)}\ntheirs ${JSON.stringify(r.theirs)}`);
    }),
    { numRuns: 20_000, seed: 42 },
  );
  t.pass();
});
