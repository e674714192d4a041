// Validation stays near-linear in the file and its output bounded, on the worst
// files that fit in 1 MiB (test/config-adversarial.ts). Times are guards, not
// benchmarks: before, these took from 1.5 s to over a minute each.
import test from "ava";
import { ConfigError, formatProblem, MAX_REPORTED_PROBLEMS } from "../common/errors.js";
import { parseConfigText } from "../config/load.js";
import { adversarial } from "./config-adversarial.js";

/** Generous: about ten times the slowest case on a busy 2-core machine. */
const GUARD_MS = 5000;

for (const [name, c] of Object.entries(adversarial)) {
  test(`${name}: ${c.valid ? "valid" : "refused"}, bounded time and problems`, (t) => {
    const text = Buffer.from(c.text());
    t.true(text.length <= 1024 * 1024);
    const started = performance.now();
    let error: unknown;
    try {
      parseConfigText(text);
    } catch (e) {
      error = e;
    }
    const ms = performance.now() - started;
    t.true(ms < GUARD_MS, `took ${Math.round(ms)} ms`);
    if (c.valid) return t.is(error, undefined, String(error));
    t.true(error instanceof ConfigError, String(error));
    t.true((error as ConfigError).problems.length <= MAX_REPORTED_PROBLEMS + 1);
  });
}

const big = (n: number, port: unknown) => JSON.stringify({ Apps: [{ Name: "a", Ports: new Array(n).fill(port), Targets: ["h:1"] }] });

test("100,000 bad ports: the first 100 listed, then how many more", (t) => {
  const err = t.throws(() => parseConfigText(big(100_000, 0)), { instanceOf: ConfigError }) as ConfigError;
  t.is(err.problems.length, MAX_REPORTED_PROBLEMS + 1);
  t.is(formatProblem(err.problems[0]!), "Apps[0].Ports[0]: must be 1-65535");
  t.is(formatProblem(err.problems[99]!), "Apps[0].Ports[99]: must be 1-65535");
  t.is(formatProblem(err.problems[100]!), "... and 99,900 more problems");
  t.is(err.omitted, 99_900);
  t.false(err.message.includes("Ports[100]"));
});

test("the cap counts problems of every kind together, in file order", (t) => {
  const apps = [
    { Name: "a", Ports: new Array(150).fill(0), Targets: ["h:1"] },
    { Name: "a", Ports: [1], Targets: new Array(30).fill("nohost") },
  ];
  const err = t.throws(() => parseConfigText(JSON.stringify({ Apps: apps })), { instanceOf: ConfigError }) as ConfigError;
  t.is(err.problems.length, 101);
  t.is(err.problems[99]!.path, "Apps[0].Ports[99]");
  // 50 more ports, 30 targets, the duplicate name.
  t.is(err.problems[100]!.message, "... and 81 more problems");
});

test("more apps than the steering map holds: refused at Apps, naming the limit", (t) => {
  const apps = Array.from({ length: 4097 }, (_, i) => ({ Name: `a${i}`, Ports: [1 + i], Targets: ["h:1"] }));
  const err = t.throws(() => parseConfigText(JSON.stringify({ Apps: apps })), { instanceOf: ConfigError }) as ConfigError;
  t.deepEqual(err.problems.map(formatProblem), [
    "Apps: lists 4,097 apps; at most 4,096 are allowed (the steering map's size); only the first 4,096 were checked",
  ]);
});

test("more (port, address) pairs than the steering map holds: refused at Apps, naming the largest app", (t) => {
  const apps = [
    { Name: "all", Ports: ["1-65535"], Targets: ["h:1"] },
    { Name: "v4", Ports: ["1-65535"], Targets: ["h:1"], Addresses: ["10.0.0.1", "10.0.0.2"] },
  ];
  const err = t.throws(() => parseConfigText(JSON.stringify({ Apps: apps })), { instanceOf: ConfigError }) as ConfigError;
  // 131,070 + 131,070 = 262,140 fits: the clash is what is wrong.
  t.regex(formatProblem(err.problems[0]!), /^Apps\[1\]\.Ports\[0\]: 65535 ports of this range, from 1, are used by both app "all" \(Apps\[0\]\) and app "v4" \(Apps\[1\]\)/);
  const over = [...apps, { Name: "v6", Ports: [1, 2, 3], Targets: ["h:1"], Addresses: ["fd00::1", "fd00::2"] }];
  const err2 = t.throws(() => parseConfigText(JSON.stringify({ Apps: over })), { instanceOf: ConfigError }) as ConfigError;
  t.deepEqual(err2.problems.map(formatProblem), [
    'Apps: the apps listen on 262,146 (port, address) pairs; at most 262,144 are allowed (the steering map\'s size); the most is app "all" (Apps[0]) with 131,070 (65,535 ports × 2 addresses)',
  ]);
});

test("clashes: every app against every other stops early and says so", (t) => {
  const apps = Array.from({ length: 4096 }, (_, i) => ({ Name: `a${i}`, Ports: ["5000-5015"], Targets: ["h:1"] }));
  const err = t.throws(() => parseConfigText(JSON.stringify({ Apps: apps })), { instanceOf: ConfigError }) as ConfigError;
  t.is(err.problems.length, 101);
  t.regex(formatProblem(err.problems[0]!), /^Apps\[1\]\.Ports\[0\]: 16 ports of this range, from 5000, are used by both app "a0" \(Apps\[0\]\) and app "a1" \(Apps\[1\]\)/);
  t.regex(err.problems[100]!.message, /^\.\.\. and at least [\d,]+ more problems$/);
});

test("clashes found by sorting prefixes are the ones the pairwise rule finds", (t) => {
  const apps = [
    { Name: "a", Ports: [80, "90-99"], Targets: ["h:1"], Addresses: ["10.0.0.0/8", "fd00::/64"] },
    { Name: "b", Ports: [80], Targets: ["h:1"], Addresses: ["10.1.0.0/16"] },
    { Name: "c", Ports: ["95-100", 80], Targets: ["h:1"], Addresses: ["fd00::1", "192.0.2.1"] },
    { Name: "d", Ports: [80, 95], Targets: ["h:1"], Addresses: ["192.0.2.0/24"] },
    { Name: "e", Ports: [80], Targets: ["h:1"], Addresses: ["192.0.3.0/24", "::1"] },
  ];
  const err = t.throws(() => parseConfigText(JSON.stringify({ Apps: apps })), { instanceOf: ConfigError }) as ConfigError;
  t.deepEqual(err.problems.map(formatProblem), [
    'Apps[1].Ports[0]: port 80 is used by both app "a" (Apps[0]) and app "b" (Apps[1]); their Addresses overlap ("10.0.0.0/8" and "10.1.0.0/16")',
    'Apps[2].Ports[0]: 5 ports of this range, from 95, are used by both app "a" (Apps[0]) and app "c" (Apps[2]); their Addresses overlap ("fd00::/64" and "fd00::1/128")',
    'Apps[2].Ports[1]: port 80 is used by both app "a" (Apps[0]) and app "c" (Apps[2]); their Addresses overlap ("fd00::/64" and "fd00::1/128")',
    'Apps[3].Ports[0]: port 80 is used by both app "c" (Apps[2]) and app "d" (Apps[3]); their Addresses overlap ("192.0.2.1/32" and "192.0.2.0/24")',
    'Apps[3].Ports[1]: port 95 is used by both app "c" (Apps[2]) and app "d" (Apps[3]); their Addresses overlap ("192.0.2.1/32" and "192.0.2.0/24")',
  ]);
});
