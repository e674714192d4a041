// The supervisor out of file descriptors when a worker must be replaced. Without
// a spare, the replacement cannot be started (socketpair fails with EMFILE): the
// supervisor says so, stays up, and starts it once descriptors are free again.
// With a spare, the replacement is the spare, at once; it is the spare's own
// replacement that cannot be started: retried with backoff, and started once
// descriptors are free again.
import test, { type ExecutionContext } from "ava";
import net from "node:net";
import { startSupervisor, type RunningSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { pollUntil, servingWorkers, sparesReady, type StatusSpare } from "./helpers/core.js";
import { childPids, fdCount, isAlive } from "./helpers/procfs.js";

const NOFILE = 100;

async function fdStarved(t: ExecutionContext, spares: number): Promise<{ sup: RunningSupervisor; port: number; victim: number; idle: StatusSpare[]; freeFds(): Promise<void> }> {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({
    config: { Apps: [{ Name: "fds", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] },
    workers: 1,
    args: ["--access-log", "off", "--spare-workers", String(spares)],
    wrap: ["prlimit", `--nofile=${NOFILE}:${NOFILE}`],
  });
  const hogs: net.Socket[] = [];
  const freeFds = async (): Promise<void> => {
    for (const h of hogs) h.destroy();
    // Until the supervisor has closed its ends, a new connection to it can still meet
    // libuv's EMFILE handling (accepted and closed at once: a reset), not the admin server.
    await pollUntil(() => !isAlive(sup.pid) || fdCount(sup.pid) < NOFILE - hogs.length / 2, 10_000);
  };
  t.teardown(async () => {
    await freeFds();
    await sup.stop();
    await target.close();
  });
  const [victim] = await servingWorkers(sup);
  // Only a loaded spare is adopted: wait for it before the admin port is starved.
  const idle = spares > 0 ? await sparesReady(sup, spares) : [];
  // Idle connections to the admin listener take the supervisor's fds until accept fails.
  for (let i = 0; i < NOFILE; i++) {
    const s = net.connect(sup.adminPort, "127.0.0.1");
    s.on("error", () => undefined);
    hogs.push(s);
    await new Promise((r) => s.once("connect", r));
  }
  return { sup, port, victim: victim!.pid!, idle, freeFds };
}

test("a worker restart that fails for want of fds is retried with backoff and succeeds once fds are free", async (t) => {
  const { sup, port, victim, freeFds } = await fdStarved(t, 0);
  const mark = sup.logs.length;
  process.kill(victim, "SIGKILL");
  const failed = await sup.waitFor((l) => l.event === "worker_spawn_failed", 15_000, mark);
  t.is(failed.code, "EMFILE");
  t.is(sup.child.exitCode, null);
  await freeFds();
  const ready = await sup.waitFor((l) => l.event === "worker_ready", 20_000, sup.logs.indexOf(failed));
  t.not(ready.pid, victim);
  t.is((await exchange(port, "after")).toString(), "after");
});

test("with a spare, the replacement is the spare at once; the spare's own start fails for want of fds, is retried with backoff, and succeeds once fds are free", async (t) => {
  const { sup, port, victim, idle, freeFds } = await fdStarved(t, 1);
  const spare = idle[0]!.pid;
  const mark = sup.logs.length;
  process.kill(victim, "SIGKILL");
  const ready = await sup.waitFor((l) => l.event === "worker_ready", 15_000, mark);
  t.is(ready.pid, spare, "the replacement is not the spare");
  t.deepEqual(sup.logs.slice(mark).filter((l) => l.event === "spare_adopted").map((l) => l.pid), [spare]);
  t.true(childPids(sup.pid).includes(ready.pid as number));
  t.is((await exchange(port, "served by the spare")).toString(), "served by the spare");
  // Its replacement as a spare cannot be started: twice, the second time after a longer wait.
  const first = await sup.waitFor((l) => l.event === "spare_start_failed", 15_000, mark);
  const second = await sup.waitFor((l) => l.event === "spare_start_failed", 15_000, sup.logs.indexOf(first) + 1);
  for (const f of [first, second]) t.is(f.code, "EMFILE");
  t.true((second.retry_in_ms as number) > (first.retry_in_ms as number), `no backoff: ${first.retry_in_ms} then ${second.retry_in_ms} ms`);
  t.deepEqual(sup.logs.slice(mark).filter((l) => l.event === "worker_spawn_failed"), [], "the replacement needed a start");
  t.is(sup.child.exitCode, null);
  await freeFds();
  // Once fds are free, the retry starts a new spare, which loads and is adopted by the next replacement.
  const [fresh] = await sparesReady(sup, 1, 20_000 + (second.retry_in_ms as number));
  t.not(fresh!.pid, spare);
  t.true(childPids(sup.pid).includes(fresh!.pid));
  const again = sup.logs.length;
  process.kill(ready.pid as number, "SIGKILL");
  const next = await sup.waitFor((l) => l.event === "worker_ready", 15_000, again);
  t.is(next.pid, fresh!.pid, "the next replacement is not the new spare");
  t.is((await exchange(port, "after")).toString(), "after");
});
