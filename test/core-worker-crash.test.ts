// A worker SIGKILLed under a steady stream of connections: nobody is refused,
// nothing dialled after the kill fails, the slot gets a new worker, /healthz is 200 again.
import test from "ava";
import { startSupervisor } from "./helpers/supervisor.js";
import { clientLoops, freePorts, startTarget, type ExchangeOutcome } from "./helpers/net.js";
import { adminGet, pollUntil, servingWorkers } from "./helpers/core.js";
import { isAlive } from "./helpers/procfs.js";

const LOOPS = 8;

test("SIGKILL of a worker under load: no refusal, no failure after the kill, the worker is replaced", async (t) => {
  const target = await startTarget("echo");
  const ports = await freePorts(3);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "steady", Ports: ports, Targets: [`127.0.0.1:${target.port}`] }] }, workers: 2 });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });

  const outcomes: ExchangeOutcome[] = [];
  let stop = false;
  const load = clientLoops(ports, LOOPS, () => stop, 30_000, "127.0.0.1", (o) => outcomes.push(o));

  // Load is flowing before the kill.
  t.true(await pollUntil(() => target.connections >= 100, 10_000), `only ${target.connections} connections before the kill`);
  const workers = await servingWorkers(sup);
  t.is(workers.length, 2);
  const victim = workers[0]!;
  const logMark = sup.logs.length;
  process.kill(victim.pid!, "SIGKILL");
  const killedAt = Date.now();

  const died = await sup.waitFor((l) => l.event === "worker_died" && l.pid === victim.pid, 10_000, logMark);
  t.is(died.worker, victim.index);
  t.is(died.signal, "SIGKILL");
  const diedAt = sup.logs.indexOf(died);
  const ready = await sup.waitFor((l) => l.event === "worker_ready" && l.worker === victim.index, 10_000, diedAt);
  t.not(ready.pid, victim.pid);
  t.true(isAlive(ready.pid as number));
  t.false(isAlive(victim.pid!));
  const health = await adminGet(sup.adminPort, "/healthz");
  t.is(health.status, 200, health.body);
  const after = await servingWorkers(sup);
  t.deepEqual(after.map((w) => w.pid).sort(), [ready.pid, workers[1]!.pid].sort());

  // Keep the stream going through the replacement for a while, then stop it.
  const mark = target.connections;
  t.true(await pollUntil(() => target.connections >= mark + 200, 10_000), "load stalled after the restart");
  stop = true;
  const result = await load;

  t.log(`ok ${result.ok}, failed ${result.failed}, wrong ${result.wrongBytes}, errors ${JSON.stringify(result.errors)}`);
  t.true(result.ok >= 300);
  // The listening socket outlives the worker: nobody is ever refused.
  t.is(result.errors.ECONNREFUSED ?? 0, 0);
  // Connections dialled after the kill cannot land on the dead worker: all succeed.
  const lateFailures = outcomes.filter((o) => o.result !== "ok" && o.startedAt > killedAt);
  t.deepEqual(lateFailures, []);
  // Only a connection the victim was carrying at that instant can be cut, and each
  // loop has at most one open: at most LOOPS failures, all dialled before the kill.
  t.true(result.failed + result.wrongBytes <= LOOPS, `${result.failed + result.wrongBytes} connections failed`);
});
