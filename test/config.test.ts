// Config loading: every invalid fixture must fail at the path it was written for,
// every valid fixture must give exactly the expected Plan. Pure unit tests.

import test from "ava";
import type { ExecutionContext } from "ava";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, formatProblem } from "../common/errors.js";
import { formatIPv6, parsePrefix, prefixesOverlap } from "../config/addresses.js";
import { formatPath } from "../config/issues.js";
import { describeJsonError } from "../config/json-syntax.js";
import { loadConfigFile, MAX_CONFIG_BYTES, parseConfigText, planFromConfig } from "../config/load.js";
import type { AppPlan, Plan } from "../config/plan.js";

// Compiled to dist/test/; the fixtures stay in the source tree.
const root = fileURLToPath(new URL("../../", import.meta.url));
const invalidDir = join(root, "test/fixtures/invalid");
const validDir = join(root, "test/fixtures/valid");
const examplesDir = join(root, "config/examples");

let scratch = "";
test.before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "switchyard-config-"));
});
test.after.always(async () => {
  if (scratch !== "") await rm(scratch, { recursive: true, force: true });
});

async function rejects(t: ExecutionContext, promise: Promise<unknown>): Promise<ConfigError> {
  const err = await t.throwsAsync(promise, { instanceOf: ConfigError });
  if (err === undefined) throw new Error("no ConfigError thrown");
  return err as ConfigError;
}

function throwsSync(t: ExecutionContext, fn: () => unknown): ConfigError {
  const err = t.throws(fn, { instanceOf: ConfigError });
  if (err === undefined) throw new Error("no ConfigError thrown");
  return err as ConfigError;
}

// file → [path, message pattern] of the problem the fixture was written to show.
const invalid: Record<string, [string, RegExp]> = {
  "port-out-of-range.json": ["Apps[1].Ports[2]", /^must be 1-65535$/],
  "port-zero.json": ["Apps[0].Ports[0]", /^must be 1-65535$/],
  "port-not-integer.json": ["Apps[0].Ports[0]", /^must be an integer port or a "start-end" range$/],
  "port-wrong-type.json": ["Apps[0].Ports[1]", /^must be an integer port or a "start-end" range$/],
  "port-quoted.json": ["Apps[0].Ports[0]", /write 5001 without quotes/],
  "port-range-reversed.json": ["Apps[0].Ports[0]", /"7000-6000": start is greater than end/],
  "port-range-out-of-bounds.json": ["Apps[0].Ports[1]", /"60000-70000": both ends must be 1-65535/],
  "ports-missing.json": ["Apps[0].Ports", /^is required$/],
  "ports-empty.json": ["Apps[0].Ports", /^must list at least one port$/],
  "ports-not-array.json": ["Apps[0].Ports", /^must be an array of ports/],
  "targets-missing.json": ["Apps[0].Targets", /^is required$/],
  "targets-empty.json": ["Apps[0].Targets", /^must list at least one target$/],
  "target-ipv6-unbracketed.json": ["Apps[0].Targets[1]", /"::1:6002": IPv6 addresses must be in brackets/],
  "target-missing-port.json": ["Apps[0].Targets[0]", /"tcp-echo.fly.dev": missing port/],
  "target-empty-host.json": ["Apps[0].Targets[0]", /":6001": host is empty/],
  "target-port-out-of-range.json": ["Apps[0].Targets[0]", /"tcp-echo.fly.dev:65536": port must be 1-65535/],
  "target-bad-hostname.json": ["Apps[0].Targets[0]", /label "bad!name" may only hold letters, digits, underscores and inner hyphens/],
  "target-not-string.json": ["Apps[0].Targets[0]", /must be a "host:port" string/],
  "name-missing.json": ["Apps[0].Name", /^is required$/],
  "name-empty.json": ["Apps[0].Name", /^must not be empty$/],
  "name-not-string.json": ["Apps[0].Name", /^must be a string$/],
  "name-duplicate.json": ["Apps[2].Name", /duplicate app name "dup" \(already used by Apps\[0\]\)/],
  "apps-missing.json": ["Apps", /^is required$/],
  "apps-empty.json": ["Apps", /^must list at least one app$/],
  "apps-not-array.json": ["Apps", /^must be an array of apps$/],
  "app-not-object.json": ["Apps[0]", /must be an object with Name, Ports and Targets/],
  "root-not-object.json": ["", /must be a JSON object with an "Apps" array/],
  "unknown-root-key.json": ["Listen", /unknown key; allowed here: Apps/],
  "unknown-app-key.json": ["Apps[0].ports", /did you mean "Ports"\?/],
  "address-invalid.json": ["Apps[0].Addresses[1]", /"localhost" is not an IPv4 or IPv6 address/],
  "address-prefix-too-long.json": ["Apps[0].Addresses[0]", /prefix length must be 0-128 for IPv6/],
  "addresses-empty.json": ["Apps[0].Addresses", /must not be empty/],
  "port-shared-no-addresses.json": ["Apps[1].Ports[1]", /port 5002 is used by both app "echo-a" \(Apps\[0\]\) and app "echo-b" \(Apps\[1\]\)/],
  "port-shared-one-explicit.json": ["Apps[1].Ports[0]", /port 5001 .*"echo-a".*"echo-b".*only if both set Addresses/],
  "port-shared-overlapping.json": ["Apps[1].Ports[0]", /port 5001 .*overlap \("10\.0\.0\.0\/8" and "10\.1\.2\.3\/32"\)/],
  "connect-timeout-out-of-range.json": ["Apps[0].ConnectTimeoutMs", /^must be 1-60000$/],
  "connect-timeout-not-integer.json": ["Apps[0].ConnectTimeoutMs", /must be an integer/],
  "idle-timeout-out-of-range.json": ["Apps[0].IdleTimeoutMs", /^must be 1-604800000$/],
  "max-connections-zero.json": ["Apps[0].MaxConnections", /^must be 1-10000000$/],
  "max-connections-not-integer.json": ["Apps[0].MaxConnections", /^must be an integer number of connections$/],
  "max-connections-per-client-out-of-range.json": ["Apps[0].MaxConnectionsPerClient", /^must be 1-65535$/],
  "idle-timeout-not-integer.json": ["Apps[0].IdleTimeoutMs", /must be an integer/],
  "balance-unknown.json": ["Apps[0].Balance", /^must be one of: "round-robin", "random", "least-connections", "power-of-two", "source-hash"$/],
  "health-check-not-object.json": ["Apps[0].HealthCheck", /^must be an object such as \{"IntervalMs": 2000, "TimeoutMs": 1000, "Rise": 2, "Fall": 3\}$/],
  "health-check-unknown-key.json": ["Apps[0].HealthCheck.intervalMs", /did you mean "IntervalMs"\?/],
  "health-check-interval-out-of-range.json": ["Apps[0].HealthCheck.IntervalMs", /^must be 100-3600000$/],
  "health-check-timeout-out-of-range.json": ["Apps[0].HealthCheck.TimeoutMs", /^must be 1-60000$/],
  "health-check-rise-not-integer.json": ["Apps[0].HealthCheck.Rise", /^must be an integer number of checks$/],
  "health-check-fall-out-of-range.json": ["Apps[0].HealthCheck.Fall", /^must be 1-100$/],
  "duplicate-key.json": ["Apps[0].Ports", /duplicate key \(first at line 3, column 20\)/],
  "syntax-missing-comma.json": ["", /invalid JSON at line 3, column 19: /],
  "syntax-trailing-comma.json": ["", /invalid JSON at line 3, column 35: /],
  "many-problems.json": ["Apps[2].Port", /unknown key/],
};

test("every invalid fixture has an expectation, and every expectation a fixture", async (t) => {
  t.deepEqual((await readdir(invalidDir)).sort(), Object.keys(invalid).sort());
});

for (const [file, [path, message]] of Object.entries(invalid)) {
  test(`invalid fixture ${file}: ${path || "(document)"}`, async (t) => {
    const err = await rejects(t, loadConfigFile(join(invalidDir, file)));
    t.is(err.code, "CONFIG_INVALID");
    const atPath = err.problems.filter((p) => p.path === path);
    t.true(atPath.length > 0, `no problem at ${path}; got ${err.problems.map(formatProblem).join(" | ")}`);
    t.true(atPath.some((p) => message.test(p.message.replace(`${join(invalidDir, file)}: `, ""))), atPath.map(formatProblem).join(" | "));
  });
}

test("a range clashing with another app: one problem per entry, with the count and first port", (t) => {
  const err = throwsSync(t, () =>
    parseConfigText(`{"Apps": [
      {"Name": "a", "Ports": [5001, "6000-6010"], "Targets": ["x:1"]},
      {"Name": "b", "Ports": ["6005-6020", 6006], "Targets": ["x:1"]}]}`),
  );
  t.deepEqual(err.problems.map(formatProblem), [
    'Apps[1].Ports[0]: 6 ports of this range, from 6005, are used by both app "a" (Apps[0]) and app "b" (Apps[1]); ' +
      "apps may share a port only if both set Addresses that do not overlap",
  ]);
});

test("all problems of a file are reported, not just the first", async (t) => {
  const err = await rejects(t, loadConfigFile(join(invalidDir, "many-problems.json")));
  t.deepEqual(err.problems.map((p) => p.path).sort(), [
    "Apps[0].Ports[0]",
    "Apps[0].Ports[1]",
    "Apps[1].Name",
    "Apps[1].Targets[0]",
    "Apps[2].Name",
    "Apps[2].Port",
    "Apps[2].Ports[0]",
  ]);
  t.true(err.message.includes("Apps[0].Ports[0]: must be 1-65535"));
});

test("the example from the DESIGN interface prints as `Apps[1].Ports[2]: must be 1-65535`", async (t) => {
  const err = await rejects(t, loadConfigFile(join(invalidDir, "port-out-of-range.json")));
  t.deepEqual(err.problems.map(formatProblem), ["Apps[1].Ports[2]: must be 1-65535"]);
});

const defaults = { addresses: ["0.0.0.0/0", "::/0"], balance: "round-robin" as const, connectTimeoutMs: 3000, idleTimeoutMs: null, healthCheck: null, maxConnections: null, maxConnectionsPerClient: null, proxyProtocol: null, acceptProxyProtocol: false, serverNames: [] };
const target = (label: string, host: string, port: number, weight = 1) => ({ label, host, port, weight });
const app = (index: number, name: string, over: Partial<AppPlan>): AppPlan => ({
  name,
  index,
  ports: [],
  targets: [target("x:1", "x", 1)],
  ...defaults,
  ...over,
});

const valid: Record<string, Plan> = {
  "fly-format.json": {
    apps: [
      app(0, "five-thousand", {
        ports: [5001, 5200, 5300, 5400],
        targets: [target("tcp-echo.fly.dev:5001", "tcp-echo.fly.dev", 5001), target("tcp-echo.fly.dev:5002", "tcp-echo.fly.dev", 5002)],
      }),
    ],
  },
  "ranges-dedupe.json": {
    apps: [app(0, "r", { ports: [5000, 5001, 5002, 5003, 5004, 6000], targets: [target("127.0.0.1:1", "127.0.0.1", 1)] })],
  },
  "ipv6-targets.json": {
    apps: [
      app(0, "v6", {
        ports: [80],
        targets: [
          target("[::1]:6001", "::1", 6001),
          target("[FD00::1]:443", "FD00::1", 443),
          target("db.internal.:5432", "db.internal.", 5432),
          target("192.0.2.7:22", "192.0.2.7", 22),
        ],
      }),
    ],
  },
  "addresses-normalised.json": {
    apps: [
      app(0, "n", {
        ports: [80],
        addresses: ["127.0.0.0/8", "::1/128", "fd00::/64", "192.0.2.1/32", "::ffff:198.51.100.1/128"],
      }),
    ],
  },
  "shared-port-disjoint.json": {
    apps: [
      app(0, "loopback-one", { ports: [7000, 8000, 8001, 8002], addresses: ["127.0.0.1/32"] }),
      app(1, "loopback-two", { ports: [7000, 8001, 8002, 8003], addresses: ["127.0.0.2/32", "::1/128"], targets: [target("x:2", "x", 2)] }),
      app(2, "v6-only", { ports: [7000], addresses: ["fd00::/8"], targets: [target("x:3", "x", 3)] }),
    ],
  },
  "options.json": {
    apps: [app(0, "o", { ports: [1, 65535], targets: [target("a-b.c:65535", "a-b.c", 65535), target("my_db:5432", "my_db", 5432)], connectTimeoutMs: 60000, idleTimeoutMs: 604800000 })],
  },
};

test("every valid fixture has an expected Plan", async (t) => {
  t.deepEqual((await readdir(validDir)).sort(), Object.keys(valid).sort());
});

for (const [file, plan] of Object.entries(valid)) {
  test(`valid fixture ${file}`, async (t) => {
    t.deepEqual(await loadConfigFile(join(validDir, file)), plan);
  });
}

test("default example: what `make run` serves", async (t) => {
  t.deepEqual(await loadConfigFile(join(examplesDir, "default.json")), {
    apps: [
      app(0, "echo-a", { ports: [5001, 5002], targets: [target("127.0.0.1:6001", "127.0.0.1", 6001), target("127.0.0.1:6002", "127.0.0.1", 6002)] }),
      app(1, "echo-b", {
        ports: [5100, 5200, 5201, 5202, 5203, 5204, 5205, 5206, 5207, 5208, 5209],
        targets: [target("127.0.0.1:6003", "127.0.0.1", 6003)],
      }),
    ],
  });
});

test("every example config is valid", async (t) => {
  const files = (await readdir(examplesDir)).filter((f) => f.endsWith(".json"));
  t.true(files.length >= 3);
  for (const f of files) {
    const plan = await loadConfigFile(join(examplesDir, f));
    t.true(plan.apps.length > 0, f);
  }
});

test("syntax error: line and column, from the file", async (t) => {
  const file = join(scratch, "syntax.json");
  await writeFile(file, '{\n  "Apps": [\n    { "Name": "a", }\n  ]\n}\n');
  const err = await rejects(t, loadConfigFile(file));
  t.is(err.code, "CONFIG_INVALID");
  t.is(err.problems.length, 1);
  t.is(err.problems[0]?.path, "");
  t.regex(err.problems[0]?.message ?? "", /^.*syntax\.json: invalid JSON at line 3, column 20: /);
});

test("syntax error positions: Node 20 and Node 22+ messages, and none at all", (t) => {
  const text = '{\n  "a": 1\n  "b": 2\n}';
  t.deepEqual(describeJsonError(text, "Expected ',' or '}' after property value in JSON at position 13"), {
    reason: "Expected ',' or '}' after property value",
    line: 3,
    column: 3,
  });
  t.deepEqual(describeJsonError(text, "Expected ',' or '}' after property value in JSON at position 13 (line 3 column 3)"), {
    reason: "Expected ',' or '}' after property value",
    line: 3,
    column: 3,
  });
  // No position from V8: our scanner must find the same spot.
  t.deepEqual(describeJsonError(text, `Unexpected token '"', "${text}" is not valid JSON`), {
    reason: "Unexpected token '\"'",
    line: 3,
    column: 3,
  });
  t.deepEqual(describeJsonError("{", "Unexpected end of JSON input"), { reason: "Unexpected end of JSON input", line: 1, column: 2 });
});

test("syntax error without a file: no source prefix", (t) => {
  const err = throwsSync(t, () => parseConfigText("[1,]"));
  t.deepEqual(err.problems, [{ path: "", message: "invalid JSON at line 1, column 4: Unexpected token ']'" }]);
});

test("not UTF-8: the bad byte's line and offset", async (t) => {
  const file = join(scratch, "latin1.json");
  await writeFile(file, Buffer.concat([Buffer.from('{\n"Apps": [{"Name": "caf'), Buffer.from([0xff]), Buffer.from('"}]}')]));
  const err = await rejects(t, loadConfigFile(file));
  t.is(err.code, "CONFIG_INVALID");
  t.regex(err.problems[0]?.message ?? "", /not valid UTF-8 \(line 2, byte offset 24\)/);
});

test("a UTF-8 byte order mark is accepted", (t) => {
  const body = Buffer.from('\uFEFF{"Apps":[{"Name":"é","Ports":[1],"Targets":["x:1"]}]}');
  t.is(parseConfigText(body).apps[0]?.name, "é");
  t.is(parseConfigText(body.toString("utf8")).apps[0]?.name, "é");
});

test("empty and blank files", async (t) => {
  const file = join(scratch, "empty.json");
  await writeFile(file, "");
  const err = await rejects(t, loadConfigFile(file));
  t.is(err.code, "CONFIG_INVALID");
  t.regex(err.problems[0]?.message ?? "", /empty\.json: file is empty/);
  t.regex(throwsSync(t, () => parseConfigText(Buffer.from(" \n\t"))).message, /only white space/);
});

test("oversized file is refused before parsing", async (t) => {
  const file = join(scratch, "big.json");
  await writeFile(file, `{"Apps": []}${" ".repeat(MAX_CONFIG_BYTES)}`);
  const err = await rejects(t, loadConfigFile(file));
  t.is(err.code, "CONFIG_INVALID");
  t.regex(err.problems[0]?.message ?? "", /too large \(1048588 bytes; the limit is 1048576\)/);
  const buf = throwsSync(t, () => parseConfigText(Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x20)));
  t.regex(buf.message, /too large/);
});

test("missing file: CONFIG_UNREADABLE with errno and path", async (t) => {
  const file = join(scratch, "nope.json");
  const err = await rejects(t, loadConfigFile(file));
  t.is(err.code, "CONFIG_UNREADABLE");
  t.deepEqual(err.problems, [{ path: "", message: `cannot read config file "${file}": ENOENT (no such file or directory)` }]);
});

test("a directory is not a config file", async (t) => {
  const err = await rejects(t, loadConfigFile(scratch));
  t.is(err.code, "CONFIG_UNREADABLE");
  t.regex(err.problems[0]?.message ?? "", /not a regular file/);
});

test("a FIFO is not a config file, and reading one does not wait for a writer", async (t) => {
  const file = join(scratch, "fifo.json");
  execFileSync("mkfifo", [file]);
  const err = await rejects(t, loadConfigFile(file));
  t.is(err.code, "CONFIG_UNREADABLE");
  t.regex(err.problems[0]?.message ?? "", /not a regular file/);
});

test("planFromConfig checks value rules the type cannot express", (t) => {
  const err = throwsSync(t, () => planFromConfig({ Apps: [{ Name: "a", Ports: ["9-1"], Targets: ["x:1"] }] }));
  t.deepEqual(err.problems.map((p) => p.path), ["Apps[0].Ports[0]"]);
  t.is(planFromConfig({ Apps: [{ Name: "a", Ports: ["1-3"], Targets: ["x:1"] }] }).apps[0]?.ports.length, 3);
});

test("a full port range expands to every port", (t) => {
  const plan = parseConfigText('{"Apps":[{"Name":"all","Ports":["1-65535", 80],"Targets":["x:1"]}]}');
  const ports = plan.apps[0]?.ports ?? [];
  t.is(ports.length, 65535);
  t.is(ports[0], 1);
  t.is(ports[65534], 65535);
});

test("formatPath", (t) => {
  t.is(formatPath([]), "");
  t.is(formatPath(["Apps"]), "Apps");
  t.is(formatPath(["Apps", 1, "Ports", 2]), "Apps[1].Ports[2]");
  t.is(formatPath(["Apps", 0, "odd key"]), 'Apps[0]["odd key"]');
});

test("prefixes: normalisation and overlap", (t) => {
  const p = (s: string) => {
    const r = parsePrefix(s);
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };
  t.is(p("10.1.2.3/8").cidr, "10.0.0.0/8");
  t.is(p("2001:DB8:0:0:1:0:0:1").cidr, "2001:db8::1:0:0:1/128");
  t.is(p("::").cidr, "::/128");
  t.is(formatIPv6(1n), "::1");
  t.true(prefixesOverlap(p("10.0.0.0/8"), p("10.255.0.1")));
  t.false(prefixesOverlap(p("10.0.0.0/8"), p("11.0.0.0/8")));
  t.false(prefixesOverlap(p("0.0.0.0/0"), p("::/0")));
  t.true(prefixesOverlap(p("::/0"), p("fd00::1")));
  t.false(parsePrefix("010.0.0.1").ok);
  t.false(parsePrefix("10.0.0.0/08").ok);
});
