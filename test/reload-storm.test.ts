// A storm of triggers: 50 SIGHUPs within 5 s under load, with the config
// changing under them. Triggers coalesce, no connection fails, the draining
// generations stay within --max-draining, and the last config wins.
import test from "ava";
import net from "node:net";
import { startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget, whoServes } from "./helpers/net.js";
import { app, config, startLoad, status } from "./helpers/reload.js";

test("50 SIGHUPs in 5 s: coalesced, nothing fails, draining bounded, last config served", async (t) => {
  const echoes = await Promise.all(["e1", "e2"].map((n) => startTarget(n)));
  const tags = await Promise.all(["t1", "t2", "final"].map((n) => startTarget(n, { tag: true })));
  t.teardown(() => Promise.all([...echoes, ...tags].map((x) => x.close())));
  const [e1, e2] = echoes as [typeof echoes[0], typeof echoes[0]];
  const [t1, t2, final] = tags as [typeof tags[0], typeof tags[0], typeof tags[0]];
  const echoPorts = await freePorts(2);
  const [tagPort] = await freePorts(1);
  const configAt = (k: number) => config(app("echo", echoPorts, [k % 2 ? e2 : e1]), app("tag", [tagPort!], [k % 2 ? t2 : t1]));
  const finalConfig = config(app("echo", echoPorts, [e1, e2]), app("tag", [tagPort!], [final]));
  const maxDraining = 3;
  // A drain timeout longer than the storm: generations stay draining while held connections live.
  const sup = await startSupervisor({ config: configAt(0), workers: 2, drainTimeout: 20, args: ["--access-log", "off", "--max-draining", String(maxDraining)] });
  t.teardown(() => sup.stop());

  // Hold one idle connection on each new generation, so draining ones pile up and the bound is reached.
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  let storming = true;
  let watched = 0;
  const holder = (async () => {
    while (storming) {
      const line = await sup.waitFor((l) => l.event === "generation_serving" || l.event === "supervisor_exited", 30_000, watched).catch(() => undefined);
      if (!line || line.event === "supervisor_exited") return;
      watched = sup.logs.indexOf(line) + 1;
      const s = net.connect(echoPorts[0]!, "127.0.0.1");
      s.on("error", () => undefined);
      held.push(s);
    }
  })();

  const load = startLoad(echoPorts, 16, 30_000);
  await load.progress(200);
  const samples = { draining: [] as number[], healthz: new Set<number>() };
  const sampler = (async () => {
    while (storming) {
      const s = await status(sup);
      samples.draining.push(s.generations.filter((g) => g.state === "draining").length);
      samples.healthz.add((await sup.admin("/healthz")).status);
      await new Promise((r) => setTimeout(r, 20)); // sampling pace, not synchronisation
    }
  })();

  const stormFrom = sup.logs.length;
  const began = Date.now();
  for (let i = 0; i < 50; i++) {
    if (i % 10 === 5) sup.writeConfig(configAt(i));
    if (i === 45) sup.writeConfig(finalConfig); // the last five signals come after the final save
    process.kill(sup.pid, "SIGHUP");
    // The storm's pace, on an absolute schedule so that a busy machine does not stretch it: 50 signals in 4.9 s.
    await new Promise((r) => setTimeout(r, Math.max(0, began + (i + 1) * 98 - Date.now())));
  }
  const stormMs = Date.now() - began;
  // The reload that takes in the last signal starts after it was logged.
  const signals = sup.logs.slice(stormFrom).filter((l) => l.event === "signal" && l.signal === "SIGHUP");
  t.is(signals.length, 50);
  const lastSignal = sup.logs.lastIndexOf(signals.at(-1)!);
  const lastStart = await sup.waitFor((l) => l.event === "reload_started", 15_000, lastSignal + 1);
  const lastEnd = await sup.waitFor((l) => l.event === "reload_succeeded" || l.event === "reload_failed", 15_000, sup.logs.indexOf(lastStart) + 1);
  t.is(lastEnd.event, "reload_succeeded", JSON.stringify(lastEnd));

  const result = await load.stop();
  storming = false;
  await sampler;
  t.log(`storm ${stormMs} ms; exchanges ${JSON.stringify(result)}; draining samples max ${Math.max(...samples.draining)} of ${samples.draining.length}`);
  t.is(result.failed, 0, JSON.stringify(result.errors));
  t.is(result.wrongBytes, 0);

  const starts = sup.logs.slice(stormFrom).filter((l) => l.event === "reload_started");
  t.log(`reload_started: ${starts.length}, sources: ${[...new Set(starts.map((l) => l.source))].join(" | ")}`);
  t.true(starts.length < 25, `${starts.length} reloads for 50 signals: not coalesced`);
  t.true(starts.some((l) => String(l.source).split(",").length > 1 || l.source === "sighup"));

  t.true(samples.draining.length > 20, "too few /status samples");
  t.true(Math.max(...samples.draining) <= maxDraining, `draining generations: ${samples.draining.join(",")}`);
  t.true(sup.logs.some((l) => l.event === "generation_force_closed"), "the draining bound was never reached");
  t.deepEqual([...samples.healthz], [200]);

  // New connections reach the final targets only.
  const served = await Promise.all(Array.from({ length: 50 }, () => whoServes(tagPort!)));
  t.deepEqual([...new Set(served)], ["final"]);
  storming = false;
  await sup.stop();
  await holder;
});
