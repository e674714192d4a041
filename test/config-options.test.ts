// Config loading, the optional keys added to the Fly.io format: Balance,
// HealthCheck, target weights and the PROXY protocol keys; each value accepted or refused at its path.
import test from "ava";
import type { ExecutionContext } from "ava";
import { ConfigError, formatProblem } from "../common/errors.js";
import { parseConfigText, planFromConfig } from "../config/load.js";

function throwsSync(t: ExecutionContext, fn: () => unknown): ConfigError {
  const err = t.throws(fn, { instanceOf: ConfigError });
  if (err === undefined) throw new Error("no ConfigError thrown");
  return err as ConfigError;
}

const target = (label: string, host: string, port: number, weight = 1) => ({ label, host, port, weight });

test("Balance: every strategy is accepted by name, and round-robin is the default", (t) => {
  for (const balance of ["round-robin", "random", "least-connections", "power-of-two", "source-hash"] as const) {
    const plan = planFromConfig({ Apps: [{ Name: "a", Ports: [1], Targets: ["x:1"], Balance: balance }] });
    t.is(plan.apps[0]?.balance, balance);
  }
  t.is(planFromConfig({ Apps: [{ Name: "a", Ports: [1], Targets: ["x:1"] }] }).apps[0]?.balance, "round-robin");
});

test("HealthCheck: none by default, every field defaulted on its own, explicit values kept", (t) => {
  const hc = (healthCheck?: Record<string, number>) =>
    planFromConfig({ Apps: [{ Name: "a", Ports: [1], Targets: ["x:1"], ...(healthCheck ? { HealthCheck: healthCheck } : {}) }] }).apps[0]?.healthCheck;
  t.is(hc(), null);
  t.deepEqual(hc({}), { intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 3 });
  t.deepEqual(hc({ Fall: 1 }), { intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 1 });
  t.deepEqual(hc({ IntervalMs: 100, TimeoutMs: 60000, Rise: 100, Fall: 100 }), { intervalMs: 100, timeoutMs: 60000, rise: 100, fall: 100 });
});

test("HealthCheck: every bad field refused at its own path, all in one go", (t) => {
  const err = throwsSync(t, () =>
    planFromConfig({ Apps: [{ Name: "a", Ports: [1], Targets: ["x:1"], HealthCheck: { IntervalMs: 3600001, TimeoutMs: 1.5, Rise: 0, Fall: "3", Port: 80 } as never }] }),
  );
  t.deepEqual(err.problems.map(formatProblem).sort(), [
    "Apps[0].HealthCheck.Fall: must be a number of checks",
    "Apps[0].HealthCheck.IntervalMs: must be 100-3600000",
    "Apps[0].HealthCheck.Port: unknown key; allowed here: IntervalMs, TimeoutMs, Rise, Fall",
    "Apps[0].HealthCheck.Rise: must be 1-100",
    "Apps[0].HealthCheck.TimeoutMs: must be an integer number of milliseconds",
  ]);
});

test('target weights: "host:port weight=N" gives the weight; the label stays "host:port"', (t) => {
  const plan = parseConfigText(JSON.stringify({
    Apps: [{ Name: "w", Ports: [1], Targets: ["10.0.0.1:80 weight=3", "[::1]:80 weight=256", "db.internal:5432", "my_db:1  weight=1", "h:2\tweight=007"] }],
  }));
  t.deepEqual(plan.apps[0]?.targets, [
    target("10.0.0.1:80", "10.0.0.1", 80, 3),
    target("[::1]:80", "::1", 80, 256),
    target("db.internal:5432", "db.internal", 5432, 1),
    target("my_db:1", "my_db", 1, 1),
    target("h:2", "h", 2, 7),
  ]);
});

test("target weights: every bad form refused at its path, all in one go", (t) => {
  const bad = [
    "x:1 weight=0",
    "x:1 weight=257",
    "x:1 weight=1.5",
    "x:1 weight=-1",
    "x:1 weight=",
    "x:1 weight",
    "x:1 weight=2 weight=3",
    "x:1 backup",
    "x:1 Weight=2",
    "x:1 ",
    " x:1",
    "x weight=2",
    "x:1weight=2",
  ];
  const err = throwsSync(t, () => planFromConfig({ Apps: [{ Name: "a", Ports: [1], Targets: ["ok:1", ...bad] }] }));
  t.deepEqual(err.problems.map(formatProblem), [
    'Apps[0].Targets[1]: target "x:1 weight=0": weight must be an integer 1-256, not "0"',
    'Apps[0].Targets[2]: target "x:1 weight=257": weight must be an integer 1-256, not "257"',
    'Apps[0].Targets[3]: target "x:1 weight=1.5": weight must be an integer 1-256, not "1.5"',
    'Apps[0].Targets[4]: target "x:1 weight=-1": weight must be an integer 1-256, not "-1"',
    'Apps[0].Targets[5]: target "x:1 weight=": weight needs a value, e.g. weight=3',
    'Apps[0].Targets[6]: target "x:1 weight": weight needs a value, e.g. weight=3',
    'Apps[0].Targets[7]: target "x:1 weight=2 weight=3": weight is given twice',
    'Apps[0].Targets[8]: target "x:1 backup": unknown option "backup"; the only option is weight=N (N 1-256)',
    'Apps[0].Targets[9]: target "x:1 Weight=2": unknown option "Weight=2"; the only option is weight=N (N 1-256)',
    'Apps[0].Targets[10]: target "x:1 ": leading or trailing white space',
    'Apps[0].Targets[11]: target " x:1": leading or trailing white space',
    'Apps[0].Targets[12]: target "x weight=2": missing port; write "host:port"',
    'Apps[0].Targets[13]: target "x:1weight=2": port must be 1-65535',
  ]);
  const notString = throwsSync(t, () => planFromConfig({ Apps: [{ Name: "a", Ports: [1], Targets: [3 as unknown as string] }] }));
  t.deepEqual(notString.problems.map(formatProblem), ['Apps[0].Targets[0]: must be a "host:port" string, optionally followed by " weight=N" (N 1-256)']);
});

test("ProxyProtocol and AcceptProxyProtocol: off by default, v1/v2 and true/false taken, anything else refused at its path", (t) => {
  const app = (extra: Record<string, unknown>) => ({ Name: "a", Ports: [1], Targets: ["x:1"], ...extra });
  t.like(planFromConfig({ Apps: [app({})] }).apps[0], { proxyProtocol: null, acceptProxyProtocol: false });
  t.like(planFromConfig({ Apps: [app({ ProxyProtocol: "v1", AcceptProxyProtocol: true })] }).apps[0], { proxyProtocol: "v1", acceptProxyProtocol: true });
  t.like(planFromConfig({ Apps: [app({ ProxyProtocol: "v2", AcceptProxyProtocol: false })] }).apps[0], { proxyProtocol: "v2", acceptProxyProtocol: false });
  const err = throwsSync(t, () => planFromConfig({ Apps: [app({ ProxyProtocol: "v3" }), app({ Name: "b", Ports: [2], ProxyProtocol: 2, AcceptProxyProtocol: "yes" })] }));
  t.deepEqual(err.problems.map(formatProblem), [
    'Apps[0].ProxyProtocol: must be "v1" or "v2"',
    'Apps[1].ProxyProtocol: must be "v1" or "v2"',
    "Apps[1].AcceptProxyProtocol: must be true or false",
  ]);
});

test("ServerNames: apps share a port by name, one default at most, no name twice, one AcceptProxyProtocol; bad names refused at their path", (t) => {
  const app = (name: string, extra: Record<string, unknown>) => ({ Name: name, Ports: [443], Targets: ["x:1"], ...extra });
  const plan = planFromConfig({ Apps: [app("a", { ServerNames: ["API.Example.com.", "*.example.com"] }), app("b", { ServerNames: ["www.example.org"] }), app("c", {})] });
  t.deepEqual(plan.apps.map((a) => a.serverNames), [["api.example.com", "*.example.com"], ["www.example.org"], []]);
  const problems = (apps: Record<string, unknown>[]) => throwsSync(t, () => planFromConfig({ Apps: apps } as never)).problems.map(formatProblem);
  t.deepEqual(problems([app("a", { ServerNames: ["api.example.com"] }), app("b", { ServerNames: ["x.example.com", "api.example.com"] })]), [
    'Apps[1].Ports[0]: port 443 is used by both app "a" (Apps[0]) and app "b" (Apps[1]); both claim the server name "api.example.com"',
  ]);
  t.deepEqual(problems([app("a", { ServerNames: ["a.example.com"] }), app("b", {}), app("c", {})]), [
    'Apps[2].Ports[0]: port 443 is used by both app "b" (Apps[1]) and app "c" (Apps[2]); apps may share a port only if both set Addresses that do not overlap',
  ]);
  t.deepEqual(problems([app("a", { ServerNames: ["a.example.com"], AcceptProxyProtocol: true }), app("b", { ServerNames: ["b.example.com"] })]), [
    'Apps[1].Ports[0]: port 443 is used by both app "a" (Apps[0]) and app "b" (Apps[1]); apps that share a port by server name must agree on AcceptProxyProtocol',
  ]);
  t.deepEqual(problems([app("a", { ServerNames: ["bad name", "*", "a..b", "-x.com", 7] }), app("b", { Ports: [1], ServerNames: [] })]), [
    'Apps[0].ServerNames[0]: must be a DNS name such as "api.example.com" or a wildcard such as "*.example.com", not "bad name"',
    'Apps[0].ServerNames[1]: must be a DNS name such as "api.example.com" or a wildcard such as "*.example.com", not "*"',
    'Apps[0].ServerNames[2]: must be a DNS name such as "api.example.com" or a wildcard such as "*.example.com", not "a..b"',
    'Apps[0].ServerNames[3]: must be a DNS name such as "api.example.com" or a wildcard such as "*.example.com", not "-x.com"',
    'Apps[0].ServerNames[4]: must be a DNS name such as "api.example.com" or a wildcard such as "*.example.com"',
    "Apps[1].ServerNames: must list at least one name; leave ServerNames out for the port's default app",
  ]);
});
