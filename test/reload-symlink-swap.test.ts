// Reload by a Kubernetes ConfigMap update: the config path is a symlink
// `config.json -> ..data/config.json`, `..data -> ..<timestamp>`; an update
// writes a new `..<timestamp>` directory, points `..data_tmp` at it, renames
// `..data_tmp` over `..data` and removes the old directory. One swap, one reload.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { startSupervisor, tempDir } from "./helpers/supervisor.js";
import { freePorts, startTarget, whoServes } from "./helpers/net.js";
import { app, config, reloadVia, sixFileReloadsUnderLoad } from "./helpers/reload.js";

/** A ConfigMap volume as the kubelet lays it out. */
class ConfigMapDir {
  readonly dir = tempDir("switchyard-configmap-");
  readonly configPath = path.join(this.dir, "config.json");
  private version = 0;
  private current: string | undefined;

  constructor(initial: unknown) {
    this.current = this.writeVersion(initial);
    fs.symlinkSync(this.current, path.join(this.dir, "..data"));
    fs.symlinkSync("..data/config.json", this.configPath);
  }

  private writeVersion(value: unknown): string {
    const name = `..2025_01_01_00_00_${String(this.version++).padStart(2, "0")}.${process.pid}`;
    fs.mkdirSync(path.join(this.dir, name));
    fs.writeFileSync(path.join(this.dir, name, "config.json"), JSON.stringify(value, null, 2));
    return name;
  }

  /** The kubelet's atomic update. */
  swap(value: unknown): void {
    const next = this.writeVersion(value);
    fs.symlinkSync(next, path.join(this.dir, "..data_tmp"));
    fs.renameSync(path.join(this.dir, "..data_tmp"), path.join(this.dir, "..data"));
    fs.rmSync(path.join(this.dir, this.current!), { recursive: true });
    this.current = next;
  }
}

test.serial("each symlink swap under 16 client loops gives exactly one reload; nothing fails", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n)));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a, b] = targets as [typeof targets[0], typeof targets[0]];
  const ports = await freePorts(2);
  const configs = [config(app("echo", ports, [a])), config(app("echo", ports, [b]))];
  const cm = new ConfigMapDir(configs[0]);
  t.teardown(() => fs.rmSync(cm.dir, { recursive: true, force: true }));
  const sup = await startSupervisor({ configPath: cm.configPath, workers: 2, drainTimeout: 5, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop());

  await sixFileReloadsUnderLoad(t, sup, ports, [a, b], (i) => cm.swap(configs[i % 2]), "swap");
});

test.serial("after a swap, new connections reach the swapped-in targets", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n, { tag: true })));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a, b] = targets as [typeof targets[0], typeof targets[0]];
  const [port] = await freePorts(1);
  const cm = new ConfigMapDir(config(app("tag", [port!], [a])));
  t.teardown(() => fs.rmSync(cm.dir, { recursive: true, force: true }));
  const sup = await startSupervisor({ configPath: cm.configPath, workers: 1 });
  t.teardown(() => sup.stop());
  t.is(await whoServes(port!), "a");
  const r = await reloadVia(sup, () => cm.swap(config(app("tag", [port!], [b]))), "file");
  t.is(r.ended.event, "reload_succeeded");
  t.is(await whoServes(port!), "b");
});
