// Fault: RLIMIT_NOFILE exhausted. The supervisor (and so its worker) runs under
// a hard limit of LIMIT open files; a flood of idle connections fills the
// worker's fds. Connections dialled while it is full are refused (accepted and
// closed at once), counted in switchyard_accept_errors_total{code="EMFILE"} and
// logged once as an episode; the worker does not crash, keeps carrying the
// connections it holds, and serves every new one once fds free up.
import test from "ava";
import { startSupervisor } from "./helpers/supervisor.js";
import { clientLoops, freePorts, startTarget } from "./helpers/net.js";
import { hold, type HeldConnection } from "./helpers/held.js";
import { servingWorkers, until } from "./helpers/core.js";
import { isAlive } from "./helpers/procfs.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { report, Tally } from "./helpers/chaos.js";

/** Low enough to fill with a few dozen connections (two fds each), high enough for Node to start. */
const LIMIT = 160;
/** Refused connections to see before the flood stops. */
const REFUSALS = 20;

/** Connections, one after another, until `n` have succeeded: a closed-early one cannot slip by. */
async function exchanges(port: number, n: number, tally: Tally): Promise<void> {
  let ok = 0;
  const r = await clientLoops([port], 1, () => ok >= n, 20_000, "127.0.0.1", (o) => void (o.result === "ok" && ok++));
  tally.addLoad(r);
}

test("RLIMIT_NOFILE exhausted by a flood: refusals counted and logged once, no crash, all served once fds free up", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({
    config: { Apps: [{ Name: "flood", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] },
    workers: 1,
    args: ["--access-log", "off"],
    wrap: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"],
  });
  const held: HeldConnection[] = [];
  t.teardown(async () => {
    for (const h of held) h.socket.destroy();
    await sup.stop("SIGKILL");
    await target.close();
  });
  const [worker] = await servingWorkers(sup);
  const untouched = new Tally();
  await exchanges(port, 50, untouched);

  // The flood: idle connections, each proven to be carried by one round trip, until REFUSALS are turned away.
  const refused = new Tally();
  let carried = 0;
  for (let i = 0; i < LIMIT && refused.failed < REFUSALS; i++) {
    const h = await hold(port);
    const error = await h.roundTrip(Buffer.from("x"), 5000).then(
      () => undefined,
      () => h.closedBy?.error ?? "EOF",
    );
    if (error === undefined) {
      held.push(h);
      carried++;
    } else {
      h.socket.destroy();
      refused.add(error);
    }
  }
  t.is(refused.failed, REFUSALS, `the worker never ran out of fds (${carried} connections carried)`);
  t.true(carried > 20 && carried < LIMIT / 2, `${carried} connections carried under a limit of ${LIMIT} fds`);
  const failing = sup.logs.filter((l) => l.event === "accept_failing");
  t.is(failing.length, 1, JSON.stringify(failing));
  t.is(failing[0]?.code, "EMFILE");

  // While refusing, it still carries what it holds.
  const echoes = await Promise.all(held.slice(0, 10).map((h) => h.roundTrip(Buffer.from("still here")).then(String, (e: Error) => e.message)));
  t.deepEqual(echoes, Array(10).fill("still here"));

  // fds free up: every new connection is served, and the episode ends with its count.
  for (const h of held.splice(0)) h.socket.destroy();
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> =>
    sampleValue(parseMetrics((await sup.admin("/metrics")).body), name, labels) ?? 0;
  await until(async () => (await metric("switchyard_connections_active", { app: "flood" })) === 0, 10_000, "the flood's connections to close");
  await exchanges(port, 100, untouched);
  // The episode ends at the first connection accepted a quiet second after the last refusal.
  const after = new Tally();
  let resumedSeen = false;
  void sup.waitFor((l) => l.event === "accept_resumed", 10_000).then(() => (resumedSeen = true), () => undefined);
  const r = await clientLoops([port], 2, () => resumedSeen, 10_000);
  after.addLoad(r);
  t.true(resumedSeen, "no accept_resumed");
  const resumed = sup.logs.find((l) => l.event === "accept_resumed");
  t.is(resumed?.count, REFUSALS);
  t.is(await metric("switchyard_accept_errors_total", { code: "EMFILE" }), REFUSALS);

  t.true(isAlive(worker!.pid!), "the worker died");
  t.deepEqual((await servingWorkers(sup)).map((w) => w.pid), [worker!.pid]);
  t.deepEqual(sup.logs.filter((l) => l.event === "worker_died"), []);
  const notTouched = Tally.sum(untouched, after);
  t.is(notTouched.failed, 0, JSON.stringify(notTouched.errors));
  const all = Tally.sum(notTouched, refused);
  all.attempted += carried;
  report(t, {
    fault: "1. RLIMIT_NOFILE exhausted (idle flood)",
    attempted: all.attempted,
    failed: all.failed,
    whatFailed: all.errors,
    touched: `the ${REFUSALS} dialled while the worker was out of fds (accepted, then closed; counted as EMFILE)`,
  });
});
