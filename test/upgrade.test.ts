// `ctl upgrade` under load, in ports and BPF mode (scenario test/scenarios/upgrade.ts,
// run in `unshare -n`): every upgrade hands every socket to a new supervisor and
// not one connection fails; long-lived connections go on across all of them; a
// failed upgrade leaves the serving supervisor as it was; nothing is left behind.
import test from "ava";
import { scenarioResult } from "./helpers/netns.js";

interface Result {
  mode: string;
  upgrades: { code: number | null; ms: number; pid?: number; stderr?: string }[];
  first: { pid: number; generation: number };
  last: { pid: number; generation: number; version: string; workers: number[] };
  unhealthy: { code: number | null; stderr: string };
  exits: { code: number | null; stderr: string };
  rejects: { code: number | null; stderr: string };
  afterFailures: { pid: number; generation: number };
  load: { ok: number; failed: number; wrongBytes: number; errors: Record<string, number> };
  longEchoes: number;
  longClosed: number;
  longExpected: number;
  totalConnections: number;
  totalsBeforeUpgrades: number;
  ownCarried: { reloads: number; reloadDurations: number };
  leftover: number[];
  firstFds: Record<string, number>;
  lastFds: Record<string, number>;
  notStopped: number[];
  handedOverLines: number;
  failedLines: unknown[];
  errors: string[];
}

// `make soak` runs 20 in a row in each mode; the suite keeps to its time budget with 3.
const rounds = Number(process.env.SWITCHYARD_UPGRADE_ROUNDS ?? 2);
const ROUNDS = { ports: rounds, bpf: rounds } as const;

for (const mode of ["ports", "bpf"] as const) {
  test(`${mode} mode: ${ROUNDS[mode]} upgrades under load, 0 failed; long-lived connections go on; failed upgrades change nothing`, async (t) => {
    const r = await scenarioResult<Result>(t, "upgrade", { env: { SCENARIO_MODE: mode, SCENARIO_ROUNDS: String(ROUNDS[mode]) } });
    const ms = r.upgrades.map((u) => u.ms);
    t.log(`${r.upgrades.length} upgrades, ${Math.min(...ms)}-${Math.max(...ms)} ms each; ${r.load.ok} exchanges; generations ${r.first.generation} -> ${r.last.generation}`);
    t.deepEqual(r.upgrades.filter((u) => u.code !== 0), [], `every upgrade succeeded; errors logged: ${r.errors.join("\n")}`);
    t.is(r.upgrades.length, ROUNDS[mode]);
    t.is(new Set(r.upgrades.map((u) => u.pid)).size, ROUNDS[mode], "a new supervisor each time");
    t.is(r.handedOverLines, ROUNDS[mode]);
    t.is(r.load.failed, 0, JSON.stringify(r.load.errors));
    t.is(r.load.wrongBytes, 0);
    t.true(r.load.ok >= 50 * ROUNDS[mode]);
    // Each generation number goes on from the last one's (one reload came first).
    t.is(r.last.generation, r.first.generation + 1 + ROUNDS[mode]);
    t.is(r.longEchoes, r.longExpected, "a long-lived connection stopped answering");
    t.is(r.longClosed, 0);
    // Totals carried across the hand-overs: every connection the load made is counted (and a few more: the long-lived ones).
    t.true(r.totalConnections >= r.load.ok, `switchyard_connections_total ${r.totalConnections} < ${r.load.ok} exchanges`);
    t.true(r.totalConnections <= r.load.ok + r.totalsBeforeUpgrades + 10, `switchyard_connections_total ${r.totalConnections}: counted twice?`);
    // The supervisors' own: the one reload before the upgrades, still counted once, histogram too.
    t.deepEqual(r.ownCarried, { reloads: 2, reloadDurations: 3 });
    // Both failures say why; the supervisor that served goes on, generation unchanged.
    t.is(r.unhealthy.code, 1);
    t.regex(r.unhealthy.stderr, /UPGRADE_FAILED.*(unhealthy|health)/i);
    t.is(r.exits.code, 1);
    t.regex(r.exits.stderr, /exited before it served/);
    t.is(r.rejects.code, 1);
    t.regex(r.rejects.stderr, /CONFIG_INVALID.*rejects/);
    // The serving supervisor is the same; the config restored after the rejected one is one more reload.
    t.deepEqual(r.afterFailures, { pid: r.last.pid, generation: r.last.generation + 1 });
    t.deepEqual(r.leftover, [], "a predecessor or its workers did not exit");
    t.deepEqual(r.lastFds, r.firstFds, "the last supervisor's fds, by kind, against the first's");
    t.deepEqual(r.notStopped, []);
  });
}
