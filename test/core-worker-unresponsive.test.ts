// A serving worker that stops answering (SIGSTOP: a hung event loop looks the
// same from outside) is found by its missed health checks, killed and
// replaced; connections dialled after it stopped are carried by the others.
import test from "ava";
import { startSupervisor } from "./helpers/supervisor.js";
import { clientLoops, freePorts, startTarget, type ExchangeOutcome } from "./helpers/net.js";
import { isAlive } from "./helpers/procfs.js";
import { pollUntil, servingWorkers } from "./helpers/core.js";

const LOOPS = 6;

test("SIGSTOP of a serving worker under load: worker_unresponsive, killed, replaced; nothing dialled after the stop fails", async (t) => {
  const target = await startTarget("echo");
  const ports = await freePorts(2);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "stuck", Ports: ports, Targets: [`127.0.0.1:${target.port}`] }] }, workers: 2, args: ["--access-log", "off"] });
  const outcomes: ExchangeOutcome[] = [];
  let stop = false;
  const load = clientLoops(ports, LOOPS, () => stop, 60_000, "127.0.0.1", (o) => outcomes.push(o));
  let victim: number | undefined;
  t.teardown(async () => {
    if (victim !== undefined && isAlive(victim)) process.kill(victim, "SIGKILL");
    stop = true;
    await load;
    await sup.stop();
    await target.close();
  });
  t.true(await pollUntil(() => outcomes.length >= 100, 10_000), "no load before the stop");
  const workers = await servingWorkers(sup);
  const pid = workers[0]!.pid!;
  victim = pid;
  const mark = sup.logs.length;
  process.kill(pid, "SIGSTOP");
  const stoppedAt = Date.now();
  const unresponsive = await sup.waitFor((l) => l.event === "worker_unresponsive" && l.pid === pid, 20_000, mark);
  t.true((unresponsive.missed_checks as number) >= 5);
  const died = await sup.waitFor((l) => l.event === "worker_died" && l.pid === pid, 10_000, mark);
  t.is(died.signal, "SIGKILL");
  const ready = await sup.waitFor((l) => l.event === "worker_ready" && l.worker === died.worker, 10_000, sup.logs.indexOf(died));
  t.true(isAlive(ready.pid as number));
  const since = outcomes.length;
  const carried = await pollUntil(() => outcomes.length >= since + 100, 10_000);
  stop = true;
  const result = await load;
  t.log(`exchanges ${JSON.stringify(result)}`);
  t.true(carried, "load stalled after the replacement");
  // Only what the stopped worker had accepted before it stopped can fail: at most one per loop.
  const late = outcomes.filter((o) => o.result !== "ok" && o.startedAt > stoppedAt);
  t.deepEqual(late, []);
  t.true(result.failed + result.wrongBytes <= LOOPS);
  t.is(result.errors.ECONNREFUSED ?? 0, 0);
});
