// Reload by saving the config file (write to a temporary file, rename over the
// config, as editors do): one save gives exactly one reload, under load.
import test from "ava";
import { startSupervisor, writeJson } from "./helpers/supervisor.js";
import { freePorts, startTarget, whoServes } from "./helpers/net.js";
import { app, config, hasSource, linesSince, reloadVia, sighup, sixFileReloadsUnderLoad } from "./helpers/reload.js";

test.serial("each save under 16 client loops gives exactly one reload; nothing fails", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n)));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a, b] = targets as [typeof targets[0], typeof targets[0]];
  const ports = await freePorts(2);
  const configs = [config(app("echo", ports, [a])), config(app("echo", ports, [b]))];
  const sup = await startSupervisor({ config: configs[0], workers: 2, drainTimeout: 5, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop());

  await sixFileReloadsUnderLoad(t, sup, ports, [a, b], (i) => sup.writeConfig(configs[i % 2]), "save", (saved) => {
    t.is(linesSince(sup, saved, (l) => l.event === "config_changed").length, 1);
  });
});

test.serial("saving the same content again gives no reload", async (t) => {
  const a = await startTarget("a");
  t.teardown(() => a.close());
  const ports = await freePorts(1);
  const cfg = config(app("echo", ports, [a]));
  const sup = await startSupervisor({ config: cfg, workers: 1 });
  t.teardown(() => sup.stop());
  const from = sup.logs.length;
  sup.writeConfig(cfg);
  // The SIGHUP afterwards is the next reload, and no file change was noticed before it.
  const h = await reloadVia(sup, sighup(sup));
  t.is(h.started.source, "sighup");
  t.is(linesSince(sup, from, (l) => l.event === "config_changed").length, 0);
});

test.serial("a save made while a reload runs is not lost", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n, { tag: true })));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a, b] = targets as [typeof targets[0], typeof targets[0]];
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("tag", [port!], [a])), workers: 2 });
  t.teardown(() => sup.stop());
  t.is(await whoServes(port!), "a");
  for (let round = 0; round < 3; round++) {
    const want = round % 2 === 0 ? b : a;
    const from = sup.logs.length;
    process.kill(sup.pid, "SIGHUP");
    // The SIGHUP reload has read the file once its generation is starting; save now.
    await sup.waitFor((l) => l.event === "generation_starting", 10_000, from);
    sup.writeConfig(config(app("tag", [port!], [want])));
    const changed = await sup.waitFor((l) => l.event === "reload_started" && hasSource(l, "file"), 5_000, from);
    await sup.waitFor((l) => l.event === "reload_succeeded", 10_000, sup.logs.indexOf(changed) + 1);
    t.is(await whoServes(port!), want.name, `round ${round}: the saved config is not served`);
  }
});

test.serial("a save made while the first generation starts, after the file was read, is served", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n, { tag: true })));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a, b] = targets as [typeof targets[0], typeof targets[0]];
  const [port] = await freePorts(1);
  let savedAt = -1;
  const sup = await startSupervisor({
    config: config(app("tag", [port!], [a])),
    workers: 1,
    // The first generation is starting: the file has been read. Save before it serves.
    onLine: (l, { configPath }) => {
      if (l.event !== "generation_starting" || savedAt >= 0) return;
      writeJson(configPath, config(app("tag", [port!], [b])));
      savedAt = Date.now();
    },
  });
  t.teardown(() => sup.stop());
  t.true(savedAt >= 0, "the save was not made during the start");
  const changed = await sup.waitFor((l) => l.event === "reload_started" && hasSource(l, "file"), 5_000);
  const ended = await sup.waitFor((l) => l.event === "reload_succeeded" || l.event === "reload_failed", 10_000, sup.logs.indexOf(changed) + 1);
  t.is(ended.event, "reload_succeeded", JSON.stringify(ended));
  t.is(await whoServes(port!), "b");
});
