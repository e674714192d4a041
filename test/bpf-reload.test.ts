// BPF-mode reloads under load (scenario test/scenarios/bpf-reload.ts, run in
// `unshare -n`): ports move between apps, apps come and go, targets change,
// while 16 client loops run; no connection fails and no socket is opened or
// closed beyond one per app added or removed.
import test, { type ExecutionContext } from "ava";

import { scenarioResult } from "./helpers/netns.js";

interface Phase {
  load: { ok: number; failed: number; wrong: number; errors: Record<string, number>; wrongSamples: string[] };
  strictChecked: number;
  reload: { updated: Record<string, unknown>; ended: string; oldGeneration: number };
  socketsBefore: string[];
  socketsAfter: string[];
  statusSockets: number;
  leadsTo: Record<string, Record<string, number>>;
  ms: { load: number; total: number };
}
interface Result {
  startSockets: string[];
  move: Phase;
  add: Phase;
  remove: Phase;
  targets: Phase;
  workerDeaths: number;
}

let run: Promise<Result> | undefined;
const result = (t: ExecutionContext): Promise<Result> => (run ??= scenarioResult<Result>(t, "bpf-reload"));

/** Both hosts (IPv4, IPv6) dialled `n` sampled ports plus the range's two ends, all answered by `tag`. */
const all = (tag: string, n: number): Record<string, number> => ({ [tag]: 2 * (n + 2) });

function noFailure(t: ExecutionContext, p: Phase): void {
  t.is(p.reload.ended, "reload_succeeded");
  t.is(p.load.failed, 0, `failed: ${JSON.stringify(p.load.errors)}`);
  t.is(p.load.wrong, 0, `wrong answers: ${p.load.wrongSamples.join("; ")}`);
  t.true(p.load.ok >= 500, `only ${p.load.ok} exchanges`);
  t.log(`${p.load.ok} exchanges during the reload (${p.ms.load} ms; phase ${p.ms.total} ms)${p.strictChecked > 0 ? `, ${p.strictChecked} held to the new routing` : ""}`);
}

test.serial("moving 5,000 ports from a to b under 16 loops: no failure, moved ports reach b", async (t) => {
  const r = await result(t);
  const p = r.move;
  noFailure(t, p);
  // Answers from a on a moved port were accepted only for connections started before the map update.
  t.true(p.strictChecked >= 20, `only ${p.strictChecked} connections to moved ports after the map update`);
  t.deepEqual(p.leadsTo, { unmoved: all("a", 100), moved: all("b", 200), b: all("b", 100) });
  // 5,000 ports × IPv4 and IPv6 moved; nothing deleted; still the same two sockets.
  t.like(p.reload.updated, { ports_set: 10_000, ports_moved: 10_000, ports_removed: 0, sockets: 2 });
  t.is(r.startSockets.length, 2, `listening: ${r.startSockets.join(" ")}`);
  t.deepEqual(p.socketsBefore, r.startSockets);
  t.deepEqual(p.socketsAfter, r.startSockets);
  t.is(p.statusSockets, 2);
});

test.serial("adding an app under load: no failure, one more socket, its ports reach it", async (t) => {
  const { add: p } = await result(t);
  noFailure(t, p);
  t.like(p.reload.updated, { ports_set: 2_000, ports_moved: 0, ports_removed: 0, sockets: 3 });
  t.deepEqual(p.leadsTo, { c: all("c", 100), a: all("a", 25), b: all("b", 25) });
  t.is(p.socketsAfter.length, 3, `listening: ${p.socketsAfter.join(" ")}`);
  for (const s of p.socketsBefore) t.true(p.socketsAfter.includes(s), `${s} was closed`);
  t.is(p.statusSockets, 3);
});

test.serial("removing an app under load: no failure on the others, its ports refused, its socket closed", async (t) => {
  const { add, remove: p } = await result(t);
  noFailure(t, p);
  t.like(p.reload.updated, { ports_set: 0, ports_moved: 0, ports_removed: 20_000, sockets: 2 });
  t.deepEqual(p.leadsTo, { b: all("error:ECONNREFUSED", 100), a: all("a", 25), c: all("c", 25) });
  t.deepEqual(p.socketsBefore, add.socketsAfter);
  t.is(p.socketsAfter.length, 2, `listening: ${p.socketsAfter.join(" ")}`);
  for (const s of p.socketsAfter) t.true(p.socketsBefore.includes(s), `${s} is new`);
  t.is(p.statusSockets, 2);
});

test.serial("changing only targets under load: no failure, the new target serves, no socket changes", async (t) => {
  const r = await result(t);
  const p = r.targets;
  noFailure(t, p);
  // Answers from the old target were accepted only for connections started before the old generation stopped accepting.
  t.true(p.strictChecked >= 20, `only ${p.strictChecked} connections to a after the old generation stopped accepting`);
  t.like(p.reload.updated, { ports_set: 0, ports_moved: 0, ports_removed: 0, sockets: 2 });
  t.deepEqual(p.leadsTo, { a: all("a2", 100), c: all("c", 25) });
  t.deepEqual(p.socketsAfter, p.socketsBefore);
  t.is(p.statusSockets, 2);
  t.is(r.workerDeaths, 0);
});
