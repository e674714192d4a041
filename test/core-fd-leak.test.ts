// The supervisor holds the listening sockets for its whole life, so any fd it
// loses track of (a hand-over socket pair, a worker's IPC channel or access-log
// pipe, a health-probe connection) accumulates until it runs out. After 100
// connections and 5 worker restarts its fd table must be what it was at start,
// whether each replacement is a spare it adopts (whose own replacement it then
// starts) or a process it starts then (--spare-workers 0).
import test, { type ExecutionContext } from "ava";
import { startSupervisor, type LogLine } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { adminGet, pollUntil, sparesReady, supervised } from "./helpers/core.js";
import { childPids, fdCount, isAlive } from "./helpers/procfs.js";
import { describeFdChange, fdTable } from "./helpers/fd-table.js";

const ROUNDS = 5;
const PER_ROUND = 20;

async function noLeak(t: ExecutionContext, spares: number): Promise<void> {
  const target = await startTarget("echo");
  const ports = await freePorts(2);
  // The access log on stdout gives every worker (and spare) a pipe to the supervisor: the restarts must close those too.
  const sup = await startSupervisor({ config: { Apps: [{ Name: "leak", Ports: ports, Targets: [`127.0.0.1:${target.port}`] }] }, workers: 2, args: ["--spare-workers", String(spares)] });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });

  // The config watch (an inotify fd) starts just after supervisor_ready: measure from when it is up.
  await sup.waitFor((l) => l.event === "config_watch_started");
  // Worker pids from the log, not /status: an admin request would itself open an fd in the supervisor.
  const pids = new Map<number, number>();
  for (const l of sup.logs) if (l.event === "worker_ready" && l.generation === 1) pids.set(l.worker as number, l.pid as number);
  t.is(pids.size, 2);
  const baseline = fdTable(sup.pid);
  t.log(`baseline: ${baseline.size} fds`);

  for (let round = 0; round < ROUNDS; round++) {
    const replies = await Promise.all(
      Array.from({ length: PER_ROUND }, (_, i) => {
        const payload = `round ${round} connection ${i}\n`;
        return exchange(ports[i % ports.length]!, payload).then((r) => r.toString() === payload);
      }),
    );
    t.true(replies.every(Boolean), `round ${round}: a reply differed`);

    // Alternate slots, so each slot's restart backoff stays short.
    const slot = round % 2;
    const victim = pids.get(slot)!;
    // Loaded spares, so that the replacement is one (only a loaded spare is adopted).
    const idle = spares > 0 ? (await sparesReady(sup, spares)).map((x) => x.pid) : [];
    const mark = sup.logs.length;
    process.kill(victim, "SIGKILL");
    const died = await sup.waitFor((l: LogLine) => l.event === "worker_died" && l.pid === victim, 10_000, mark);
    const ready = await sup.waitFor((l: LogLine) => l.event === "worker_ready" && l.worker === slot, 10_000, sup.logs.indexOf(died) + 1);
    t.not(ready.pid, victim);
    t.false(isAlive(victim));
    const adopted = sup.logs.slice(mark).filter((l) => l.event === "spare_adopted").map((l) => l.pid);
    if (spares > 0) {
      t.deepEqual(adopted, [ready.pid], `round ${round}: the replacement is not the spare adopted`);
      t.true(idle.includes(ready.pid as number), `round ${round}: the replacement was not a spare`);
    } else {
      t.deepEqual(adopted, []);
    }
    pids.set(slot, ready.pid as number);
  }

  // The replacements serve: one more exchange per port, after the last restart.
  for (const port of ports) t.is((await exchange(port, "after\n")).toString(), "after\n");
  // The spares taken were replaced: as many as at the start (the count the baseline was taken with), loaded.
  if (spares > 0) await sparesReady(sup, spares);
  const now = await supervised(sup);
  const byNumber = (a: number, b: number): number => a - b;
  t.deepEqual(now.workers, [...pids.values()].sort(byNumber), "/status lists other workers than the live ones");
  t.is(now.spares.length, spares);
  t.deepEqual(childPids(sup.pid).sort(byNumber), now.all, "the supervisor's children are not exactly the live workers and the spares");

  // A dead worker's pipes, a health probe's connection and the /status requests' close a
  // few ticks after the events we waited for, and no log line says so: poll briefly for the count.
  await pollUntil(() => fdCount(sup.pid) === baseline.size, 5000);
  const after = fdTable(sup.pid);
  t.is(after.size, baseline.size, `supervisor fd table changed:\n${describeFdChange(baseline, after)}`);

  // Measured, now it may use the admin port: the supervisor still calls itself healthy.
  const health = await adminGet(sup.adminPort, "/healthz");
  t.is(health.status, 200, health.body);
}

test("no fd leak in the supervisor after 100 connections and 5 worker restarts, each replacement a spare", noLeak, 2);
test("no fd leak in the supervisor after 100 connections and 5 worker restarts, without spares", noLeak, 0);
