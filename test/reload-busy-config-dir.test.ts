// The config beside a file written every 10 ms (an access log, another
// program's log, an editor's swap file): saves of the config still reload,
// each within a bounded delay, and the last one saved is what serves.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { startSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { app, config, reloadVia, startLoad, status } from "./helpers/reload.js";

const SAVES = 15;

test("15 saves beside a file appended to every 10 ms: 15 file reloads under load, the last config serves", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n)));
  const [a, b] = targets as [(typeof targets)[0], (typeof targets)[0]];
  const ports = await freePorts(2);
  const configs = [config(app("busy", ports, [a])), config(app("busy", ports, [b]))];
  const sup = await startSupervisor({ config: configs[0], workers: 2, args: ["--access-log", "off"] });
  // The neighbour: appended to every 10 ms for as long as the test runs, and
  // also replaced now and then, as a logrotate or an editor's swap file would.
  const neighbour = path.join(path.dirname(sup.configPath), "neighbour.log");
  let appends = 0;
  const writer = setInterval(() => {
    fs.appendFileSync(neighbour, `line ${++appends}\n`);
    if (appends % 50 === 0) fs.renameSync(neighbour, `${neighbour}.1`);
  }, 10);
  const load = startLoad(ports, 8, 60_000);
  t.teardown(async () => {
    clearInterval(writer);
    await load.stop();
    await sup.stop();
    await Promise.all(targets.map((x) => x.close()));
  });

  await load.progress(100);
  const delays: number[] = [];
  for (let i = 1; i <= SAVES; i++) {
    const savedAt = Date.now();
    const r = await reloadVia(sup, () => sup.writeConfig(configs[i % 2]), "file");
    t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
    delays.push(Date.parse(r.started.time as string) - savedAt);
    await load.progress(50);
  }
  const result = await load.stop();
  t.log(`save-to-reload delays (ms): ${delays.join(" ")}; neighbour appends: ${appends}; exchanges: ${JSON.stringify(result)}`);
  t.true(appends >= 100, `the neighbour was written only ${appends} times`);
  // Debounced, never postponed by the neighbour: a generous bound on a 1 s maximum delay.
  t.true(Math.max(...delays) < 3000, `a save waited ${Math.max(...delays)} ms for its reload`);
  t.is(result.failed, 0, JSON.stringify(result.errors));
  t.is(result.wrongBytes, 0);
  // Save 15 named target b.
  t.deepEqual((await status(sup)).apps[0]!.targets.map((x) => x.target), [`127.0.0.1:${b.port}`]);
  const [fromA, fromB] = [a.connections, b.connections];
  for (let i = 0; i < 5; i++) t.is((await exchange(ports[i % 2]!, `after ${i}`)).toString(), `after ${i}`);
  t.is(a.connections, fromA, "a connection went to the target of an earlier save");
  t.is(b.connections, fromB + 5);
});
