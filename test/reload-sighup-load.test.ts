// Zero-downtime reload under load, triggered by SIGHUP: 16 client loops keep
// connecting while the config flips 15 times between two sets of echo targets.
import test from "ava";
import { startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { app, config, reloadVia, sighup, startLoad, status } from "./helpers/reload.js";

test("15 SIGHUP reloads under 16 client loops: no failed connection, no wrong byte", async (t) => {
  const targets = await Promise.all(["a1", "a2", "b1", "b2"].map((n) => startTarget(n)));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a1, a2, b1, b2] = targets as [typeof targets[0], typeof targets[0], typeof targets[0], typeof targets[0]];
  const ports = await freePorts(2);
  const configA = config(app("echo", ports, [a1, a2]));
  const configB = config(app("echo", ports, [b1, b2]));
  const sup = await startSupervisor({ config: configA, workers: 2, drainTimeout: 5, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop());

  const load = startLoad(ports, 16, 40_000);
  const generations: number[] = [];
  try {
    await load.progress(200);
    for (let i = 1; i <= 15; i++) {
      // Save, then signal at once, as an operator would: the SIGHUP's reload reads the save.
      // (The watch may see the save too; such a reload is coalesced with this one.)
      sup.writeConfig(i % 2 === 1 ? configB : configA);
      const r = await reloadVia(sup, sighup(sup), (src) => src.split(",").includes("sighup"));
      t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
      generations.push(r.ended.generation as number);
      // Pace on traffic carried, not on time: the next trigger waits for real exchanges.
      await load.progress(600, 30_000);
    }
  } finally {
    const result = await load.stop();
    t.log(`exchanges: ${JSON.stringify(result)}`);
  }
  const result = load.result;
  t.is(result.failed, 0, JSON.stringify(result.errors));
  t.is(result.wrongBytes, 0);
  t.true(result.ok > 15 * 600);
  t.true(generations.every((g, i) => i === 0 || g > generations[i - 1]!), `generations ${generations.join(",")}`);
  // Traffic really moved between the two target sets.
  for (const x of targets) t.true(x.connections > 0, `target ${x.name} served nothing`);
  const s = await status(sup);
  t.deepEqual(s.apps[0]!.targets.map((x) => x.target), [b1, b2].map((x) => `127.0.0.1:${x.port}`));
  t.true(s.healthy);
});
