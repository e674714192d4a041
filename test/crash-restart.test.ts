// kill -9 of the supervisor under load, in ports and BPF mode, under the suite's
// own service manager (test/helpers/service-manager.ts: the fd store, Restart=,
// KillMode=process; scenario test/scenarios/crash-restart.ts in `unshare -n`):
// each restart takes the sockets (and the BPF link and maps) back from the store,
// no connection is refused meanwhile, and the connections open at each kill go on
// in the orphaned workers until they finish.
import test from "ava";
import { scenarioResult } from "./helpers/netns.js";

interface Result {
  mode: string;
  rounds: { killed: number; restartedMs: number; inherited: number; names: string[]; echoes: number }[];
  load: { ok: number; failed: number; wrongBytes: number; errors: Record<string, number> };
  longExpected: number;
  longEchoes: number;
  refusedNotifications: string[];
  storedAtEnd: string[];
  orphansLeft: number[];
  lastWorkersLeft: number[];
  errors: string[];
}

/** 3 in the suite; `make soak` runs more (SWITCHYARD_CRASH_KILLS). */
const KILLS = Number(process.env.SWITCHYARD_CRASH_KILLS ?? 3);
const STORED = {
  ports: ["state", "tcp-127.0.0.1-P", "tcp-127.0.0.1-P", "tcp-127.0.0.1-P"],
  bpf: ["app-P", "bpf-counters", "bpf-link", "bpf-ports", "bpf-sockets", "state"],
};

for (const mode of ["ports", "bpf"] as const) {
  test(`${mode} mode: ${KILLS} x kill -9 of the supervisor under load: 0 refused, sockets taken back from the fd store, open connections go on`, async (t) => {
    const r = await scenarioResult<Result>(t, "crash-restart", { env: { SCENARIO_MODE: mode, SCENARIO_KILLS: String(KILLS) } });
    t.log(`restarts serving after ${r.rounds.map((x) => x.restartedMs).join(", ")} ms; ${r.load.ok} exchanges`);
    t.is(r.rounds.length, KILLS);
    t.is(r.load.failed, 0, `failed: ${JSON.stringify(r.load.errors)}; errors logged: ${r.errors.join("\n")}`);
    t.is(r.load.wrongBytes, 0);
    for (const round of r.rounds) {
      // Every restart was handed what the store held, under the names the supervisor gave.
      t.deepEqual(round.names.map((n) => n.replace(/-\d+$/, "-P")).sort(), STORED[mode], JSON.stringify(round));
      t.is(round.inherited, STORED[mode].length);
    }
    // The long-lived connections opened before the first kill answered after every one.
    t.is(r.longEchoes, r.longExpected);
    t.deepEqual(r.refusedNotifications, [], "a notification came from another pid than the main one");
    t.deepEqual(r.storedAtEnd.map((n) => n.replace(/-\d+$/, "-P")).sort(), STORED[mode]);
    t.deepEqual(r.orphansLeft, [], "orphaned workers did not exit");
    t.deepEqual(r.lastWorkersLeft, []);
  });
}
