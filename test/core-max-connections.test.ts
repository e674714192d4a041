// --max-connections: a worker that already carries that many connections
// closes a new one at once, counts it (access log, metrics) and logs the
// episode once; once a connection ends, new ones are carried again.
import test from "ava";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { once } from "node:events";
import { startSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { app, config } from "./helpers/reload.js";
import { pollUntil } from "./helpers/core.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";

const MAX = 3;

/** A connection that has been carried to the echo target and stays open. */
async function held(port: number): Promise<net.Socket> {
  const s = net.connect(port, "127.0.0.1");
  s.on("error", () => undefined);
  s.write("ping");
  await once(s, "data");
  return s;
}

test("beyond --max-connections a new connection is closed at once, counted and logged once; below it, carried again", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const logFile = path.join(fs.mkdtempSync("/tmp/switchyard-maxconn-"), "access.log");
  const sup = await startSupervisor({ config: config(app("cap", [port], [target])), workers: 1, args: ["--max-connections", String(MAX), "--access-log", logFile] });
  const open: net.Socket[] = [];
  t.teardown(async () => {
    for (const s of open) s.destroy();
    await sup.stop();
    await target.close();
  });
  for (let i = 0; i < MAX; i++) open.push(await held(port));
  t.is(target.connections, MAX);

  // Over the limit: closed without reaching the target, twice, one log line for both.
  for (let i = 0; i < 2; i++) {
    const reply = await exchange(port, "over").catch((e: NodeJS.ErrnoException) => Buffer.from(`error ${e.code}`));
    t.not(reply.toString(), "over");
  }
  t.is(target.connections, MAX);
  const reached = sup.logs.filter((l) => l.event === "connection_limit_reached");
  t.is(reached.length, 1);
  t.is(reached[0]!.max_connections, MAX);

  // One ends: once the worker has seen it end, the next is carried (tries before that are refused and counted too).
  open.shift()!.destroy();
  let carried = false;
  for (let i = 0; i < 50 && !carried; i++) {
    carried = (await exchange(port, "again").catch(() => Buffer.alloc(0))).toString() === "again";
  }
  t.true(carried, "no connection carried after one ended");
  await sup.waitFor((l) => l.event === "connection_limit_cleared", 5000);

  const metrics = parseMetrics((await sup.admin("/metrics")).body);
  const refused = sampleValue(metrics, "switchyard_connection_errors_total", { app: "cap", reason: "worker_limit" }) ?? 0;
  t.true(refused >= 2, `worker_limit counted ${refused}`);
  const ends = () => fs.readFileSync(logFile, "utf8").split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { end: string }).end);
  t.true(await pollUntil(() => ends().filter((e) => e === "worker_limit").length === refused, 5000), `access log: ${ends().join(",")}`);
});
