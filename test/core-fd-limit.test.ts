// Started under a low soft limit on open files (a shell's usual 1024, here
// 256), the supervisor and its workers run with the hard limit: Node raises the
// soft limit at start-up, and the proxy relies on it (two fds per connection).
import test from "ava";
import fs from "node:fs";
import { startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { hold, type HeldConnection } from "./helpers/held.js";
import { servingWorkers } from "./helpers/core.js";

const softFdLimit = (pid: number): number => Number(/^Max open files\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, "utf8"))?.[1]);

test("the soft fd limit is the hard one: one worker carries 200 connections that a soft 256 could not", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({
    config: { Apps: [{ Name: "many", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] },
    workers: 1,
    wrap: ["prlimit", "--nofile=256:4096", "--"],
  });
  const held: HeldConnection[] = [];
  t.teardown(async () => {
    for (const h of held) h.socket.destroy();
    await sup.stop("SIGKILL");
    await target.close();
  });
  const [worker] = await servingWorkers(sup);
  t.is(softFdLimit(sup.pid), 4096);
  t.is(softFdLimit(worker!.pid!), 4096);

  // Each connection costs the worker two fds: 400 in all, past the 256 it started with.
  for (let i = 0; i < 200; i++) held.push(await hold(port));
  const echoes = await Promise.all(held.map((h, i) => h.roundTrip(Buffer.from(`connection ${i}`)).then(String, (e: Error) => e.message)));
  t.deepEqual(echoes.filter((e, i) => e !== `connection ${i}`), []);
  t.deepEqual(held.filter((h) => h.closedBy !== undefined).map((h) => h.closedBy), []);
});
