// The supervisor's prober on its own, with a fake check: Rise and Fall, the
// state kept across plans, new targets up until proven down, removed ones
// forgotten, and nothing left running after stop(). No process, no socket.
import test from "ava";
import { createLogger } from "../common/log.js";
import type { TargetState } from "../common/messages.js";
import type { AppPlan, HealthCheckPlan, Plan } from "../config/plan.js";
import { TargetProber } from "../supervisor/health/target-prober.js";
import type { CheckResult } from "../supervisor/health/tcp-check.js";

const check: HealthCheckPlan = { intervalMs: 1, timeoutMs: 100, rise: 2, fall: 3 };

function plan(apps: Record<string, string[]>, healthCheck: HealthCheckPlan | null = check): Plan {
  return {
    apps: Object.entries(apps).map(([name, labels], index): AppPlan => ({
      name,
      index,
      ports: [1],
      addresses: [],
      targets: labels.map((label) => ({ label, host: label.split(":")[0]!, port: Number(label.split(":")[1]), weight: 1 })),
      balance: "round-robin",
      connectTimeoutMs: 1000,
      idleTimeoutMs: null,
      healthCheck,
      maxConnections: null,
      maxConnectionsPerClient: null,
      proxyProtocol: null,
      acceptProxyProtocol: false,
      serverNames: [],
    })),
  };
}

/** A prober whose checks answer what `alive` says of each host, and which records what it reports. */
function harness() {
  const alive = new Map<string, boolean>();
  const changes: TargetState[] = [];
  const checks: { app: string; target: string; ok: boolean }[] = [];
  const forgotten: string[] = [];
  const waiters: { until: () => boolean; resolve: () => void }[] = [];
  const wake = (): void => {
    for (const w of waiters.filter((x) => x.until())) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  const prober = new TargetProber(
    {
      onChange: (s) => (changes.push(...s), wake()),
      onCheck: (app, target, ok) => (checks.push({ app, target, ok }), wake()),
      onForget: (app, target) => forgotten.push(`${app}/${target}`),
    },
    createLogger({}, "silent"),
    (host) => {
      const r: CheckResult = alive.get(host) === false ? { ok: false, reason: "ECONNREFUSED" } : { ok: true };
      return { result: Promise.resolve(r), finished: Promise.resolve() };
    },
  );
  /** Resolves once `until` holds after some check (bounded). */
  const when = (until: () => boolean): Promise<void> =>
    until()
      ? Promise.resolve()
      : new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out; changes ${JSON.stringify(changes)}`)), 5000);
          waiters.push({ until, resolve: () => (clearTimeout(timer), resolve()) });
        });
  const checksOf = (target: string, ok?: boolean): number => checks.filter((c) => c.target === target && (ok === undefined || c.ok === ok)).length;
  return { prober, alive, changes, checks, forgotten, when, checksOf };
}

test("Fall failures in a row take a target down, Rise successes bring it back; each transition reported once", async (t) => {
  const h = harness();
  t.teardown(() => h.prober.stop());
  h.alive.set("b", false);
  h.prober.setPlan(plan({ web: ["a:1", "b:1"] }));
  t.deepEqual(h.prober.states(), [{ app: "web", target: "a:1", up: true }, { app: "web", target: "b:1", up: true }], "up until proven down");
  await h.when(() => h.changes.length === 1);
  t.deepEqual(h.changes, [{ app: "web", target: "b:1", up: false }]);
  t.is(h.checksOf("b:1", false), 3);
  t.like(h.prober.statusOf("web", "b:1"), { up: false, reason: "ECONNREFUSED" });
  t.is(h.prober.statusOf("web", "a:1")?.reason, undefined);

  h.alive.set("b", true);
  await h.when(() => h.changes.length === 2);
  t.deepEqual(h.changes[1], { app: "web", target: "b:1", up: true });
  t.is(h.checksOf("b:1", true), 2);
  t.like(h.prober.statusOf("web", "b:1"), { up: true, reason: undefined });
  t.is(h.changes.filter((c) => c.target === "a:1").length, 0);
});

test("a new plan: kept targets keep their state, new ones start up, removed ones and unchecked apps are forgotten", async (t) => {
  const h = harness();
  t.teardown(() => h.prober.stop());
  h.alive.set("dead", false);
  h.prober.setPlan(plan({ web: ["dead:1", "gone:1"], other: ["o:1"] }));
  await h.when(() => h.changes.length === 1);

  h.prober.setPlan({ apps: [...plan({ web: ["dead:1", "new:1"] }).apps, ...plan({ other: ["o:1"] }, null).apps.map((a) => ({ ...a, index: 1 }))] });
  t.deepEqual(h.prober.states(), [{ app: "web", target: "dead:1", up: false }, { app: "web", target: "new:1", up: true }]);
  t.deepEqual(h.forgotten.sort(), ["other/o:1", "web/gone:1"]);
  t.is(h.prober.statusOf("other", "o:1"), undefined);
  const before = h.checks.length;
  await h.when(() => h.checksOf("new:1") >= 2 && h.checks.length >= before + 5);
  t.is(h.checks.slice(before).filter((c) => c.target === "gone:1" || c.target === "o:1").length, 0, "no check of a forgotten target");
  t.is(h.changes.length, 1, "no transition from the new plan itself");
});

test("stop(): no check runs afterwards", async (t) => {
  const h = harness();
  h.prober.setPlan(plan({ web: ["a:1"] }));
  await h.when(() => h.checks.length >= 2);
  h.prober.stop();
  const n = h.checks.length;
  // Long enough for hundreds of 1 ms intervals.
  await new Promise((r) => setTimeout(r, 50));
  t.is(h.checks.length, n);
  t.deepEqual(h.prober.states(), []);
});
