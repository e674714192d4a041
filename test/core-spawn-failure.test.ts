// The supervisor out of file descriptors when a worker must be replaced: the
// replacement cannot be started (socketpair fails with EMFILE); the supervisor
// says so, stays up, and starts it once descriptors are free again.
import test from "ava";
import net from "node:net";
import { startSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { servingWorkers } from "./helpers/core.js";

const NOFILE = 100;

test("a worker restart that fails for want of fds is retried with backoff and succeeds once fds are free", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({
    config: { Apps: [{ Name: "fds", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] },
    workers: 1,
    args: ["--access-log", "off"],
    wrap: ["prlimit", `--nofile=${NOFILE}:${NOFILE}`],
  });
  const hogs: net.Socket[] = [];
  t.teardown(async () => {
    for (const h of hogs) h.destroy();
    await sup.stop();
    await target.close();
  });
  const [victim] = await servingWorkers(sup);
  // Idle connections to the admin listener take the supervisor's fds until accept fails.
  for (let i = 0; i < NOFILE; i++) {
    const s = net.connect(sup.adminPort, "127.0.0.1");
    s.on("error", () => undefined);
    hogs.push(s);
    await new Promise((r) => s.once("connect", r));
  }
  const mark = sup.logs.length;
  process.kill(victim!.pid!, "SIGKILL");
  const failed = await sup.waitFor((l) => l.event === "worker_spawn_failed", 15_000, mark);
  t.is(failed.code, "EMFILE");
  t.is(sup.child.exitCode, null);
  for (const h of hogs) h.destroy();
  const ready = await sup.waitFor((l) => l.event === "worker_ready", 20_000, sup.logs.indexOf(failed));
  t.not(ready.pid, victim!.pid);
  t.is((await exchange(port, "after")).toString(), "after");
});
