// MaxConnections: an app's open connections are counted over every worker
// (a table the workers share), so the limit holds however the kernel spreads
// connections; a SIGKILLed worker's connections are given back once it exits.
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { startSupervisor } from "./helpers/supervisor.js";
import { carried, freePorts, held, startTarget } from "./helpers/net.js";
import { servingWorkers } from "./helpers/core.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { status } from "./helpers/reload.js";

const MAX = 3;

test("MaxConnections holds over all workers, refused ones are counted, and a killed worker's connections are given back", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "capped", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`], MaxConnections: MAX }] }, workers: 2, args: ["--access-log", "off"] });
  const open: net.Socket[] = [];
  t.teardown(async () => {
    for (const s of open) s.destroy();
    await sup.stop();
    await target.close();
  });
  for (let i = 0; i < MAX; i++) open.push(await held(port));
  // Several tries: the kernel hands them to either worker; none may pass.
  for (let i = 0; i < 6; i++) t.false(await carried(port), `connection ${i} over the limit was carried`);
  t.is(target.connections, MAX);
  const app = (await status(sup)).apps[0] as unknown as { maxConnections: number; openConnections: number };
  t.deepEqual([app.maxConnections, app.openConnections], [MAX, MAX]);
  const metrics = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(metrics, "switchyard_connection_errors_total", { app: "capped", reason: "app_limit" }), 6);

  // Every worker SIGKILLed: their connections die with them, and once they have
  // exited the supervisor gives their counts back, so the replacements carry MAX again.
  const workers = await servingWorkers(sup);
  const mark = sup.logs.length;
  for (const w of workers) process.kill(w.pid!, "SIGKILL");
  for (const w of workers) await sup.waitFor((l) => l.event === "worker_ready" && l.worker === w.index && l.pid !== w.pid, 15_000, mark);
  for (const s of open.splice(0)) s.destroy();
  for (let i = 0; i < MAX; i++) open.push(await held(port));
  t.false(await carried(port), "over the limit after the restart");
  t.is(target.connections, 2 * MAX);
});
