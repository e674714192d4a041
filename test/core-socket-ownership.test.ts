// The listening sockets belong to the supervisor: each worker accepts on the very
// socket the supervisor holds (same inode), runs unprivileged, and binds nothing itself.
import test from "ava";
import { execFileSync } from "node:child_process";
import { startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget, whoServes } from "./helpers/net.js";
import { freePrivilegedPort, servingWorkers } from "./helpers/core.js";
import { listeningInodes, socketInodes, uidOf } from "./helpers/procfs.js";

const intersect = (...sets: Set<number>[]): number[] => [...sets[0]!].filter((x) => sets.every((s) => s.has(x)));

test("every worker listens on the supervisor's own sockets, for every port", async (t) => {
  const target = await startTarget("owned", { tag: true });
  // One port below 1024: a worker running as nobody could not bind it if it tried.
  const ports = [...(await freePorts(2)), await freePrivilegedPort()];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "owned", Ports: ports, Targets: [`127.0.0.1:${target.port}`] }] }, workers: 2 });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });

  const workers = await servingWorkers(sup);
  t.is(workers.length, 2);
  const supervisorSockets = socketInodes(sup.pid);
  for (const port of ports) {
    t.is(await whoServes(port), "owned", `port ${port} does not proxy`);
    const listening = listeningInodes(port);
    t.true(listening.size > 0, `nothing listens on ${port}`);
    // The workers' listen(2) on the shared socket kept the supervisor's backlog (ss: Send-Q).
    const backlogs = execFileSync("ss", ["-Hltn", `sport = :${port}`], { encoding: "utf8" }).trim().split("\n").map((l) => l.trim().split(/\s+/)[2]);
    t.deepEqual([...new Set(backlogs)], ["4096"], `port ${port}: backlog ${backlogs.join(",")}`);
    // Every listening socket on the port is one the supervisor holds: nobody else bound one.
    t.deepEqual(intersect(listening, supervisorSockets).sort(), [...listening].sort(), `port ${port}: a listening socket the supervisor does not hold`);
    for (const w of workers) {
      const mine = socketInodes(w.pid!);
      const shared = intersect(listening, supervisorSockets, mine);
      t.true(shared.length > 0, `worker ${w.pid} does not hold the supervisor's socket for port ${port}`);
      // And it holds no listening socket of its own on the port.
      t.deepEqual(intersect(listening, mine).sort(), shared.sort());
    }
  }
  for (const w of workers) t.is(uidOf(w.pid!), 65534, `worker ${w.pid} is not running as nobody`);
  // The workers said so too: they served as nobody.
  const serving = sup.logs.filter((l) => l.event === "worker_serving");
  t.is(serving.length, 2);
  for (const l of serving) t.is(l.uid, 65534);
});
