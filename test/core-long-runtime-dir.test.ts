// A runtime dir of 100 characters (a per-tenant tree under /var/lib, a
// per-test tree under /tmp): the supervisor starts, reloads past generation
// 10, and replaces each worker SIGKILLed under load; `ctl` reaches it. Unix
// socket paths are cut at 107 bytes, and nothing here may depend on them.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { cli, runCommand, RUNTIME_DIR_FILES, startSupervisor, tempDir } from "./helpers/supervisor.js";
import { clientLoops, freePorts, startTarget, type ExchangeOutcome } from "./helpers/net.js";
import { isAlive } from "./helpers/procfs.js";
import { app, config, currentPids, reloadVia, sighup, status } from "./helpers/reload.js";

const LOOPS = 8;
const RELOADS = 12;

function dirOfLength(length: number): string {
  const base = tempDir("switchyard-long-");
  const dir = path.join(base, "t".repeat(length - base.length - 1));
  fs.mkdirSync(dir);
  return dir;
}

test("100-character runtime dir: start, 12 reloads, each worker SIGKILLed under load and replaced; ctl works", async (t) => {
  const runtimeDir = dirOfLength(100);
  t.is(runtimeDir.length, 100);
  const target = await startTarget("echo");
  const ports = await freePorts(2);
  const cfg = config(app("long", ports, [target]));
  const sup = await startSupervisor({ config: cfg, workers: 2, runtimeDir, args: ["--access-log", "off"] });
  const outcomes: ExchangeOutcome[] = [];
  let stop = false;
  const load = clientLoops(ports, LOOPS, () => stop, 90_000, "127.0.0.1", (o) => outcomes.push(o));
  t.teardown(async () => {
    stop = true;
    await load;
    await sup.stop();
    await target.close();
  });
  const carried = async (n: number): Promise<void> => {
    const want = outcomes.length + n;
    const from = Date.now();
    while (outcomes.length < want) {
      if (Date.now() - from > 20_000) throw new Error(`load stalled: ${outcomes.length} of ${want}`);
      await new Promise((r) => setImmediate(r));
    }
  };

  await carried(100);
  for (let i = 0; i < RELOADS; i++) {
    const r = await reloadVia(sup, sighup(sup));
    t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
    await carried(50);
  }
  t.is((await status(sup)).generation, RELOADS + 1);

  // Every worker of the generation, then the first replacement once more.
  const kills: { pid: number; at: number }[] = [];
  const victims = currentPids(await status(sup));
  for (const pid of [...victims, undefined]) {
    const victim = pid ?? currentPids(await status(sup))[0]!;
    const mark = sup.logs.length;
    process.kill(victim, "SIGKILL");
    kills.push({ pid: victim, at: Date.now() });
    const died = await sup.waitFor((l) => l.event === "worker_died" && l.pid === victim, 10_000, mark);
    const ready = await sup.waitFor((l) => l.event === "worker_ready" && l.worker === died.worker, 10_000, sup.logs.indexOf(died));
    t.true(isAlive(ready.pid as number));
    await carried(100);
  }
  const final = await status(sup);
  t.true(final.healthy);
  t.is(currentPids(final).length, 2);
  t.false(currentPids(final).some((p) => kills.some((k) => k.pid === p)));

  const ctlStatus = await runCommand(process.execPath, [cli, "ctl", "--runtime-dir", runtimeDir, "--json", "status"]);
  t.is(ctlStatus.code, 0, ctlStatus.stderr);
  t.is((JSON.parse(ctlStatus.stdout) as { pid: number }).pid, sup.pid);
  const ctlReload = await runCommand(process.execPath, [cli, "ctl", "--runtime-dir", runtimeDir, "reload"]);
  t.is(ctlReload.code, 0, ctlReload.stderr);
  t.deepEqual(fs.readdirSync(runtimeDir).filter((f) => !f.endsWith(".lock")).sort(), RUNTIME_DIR_FILES);

  stop = true;
  const result = await load;
  t.log(`exchanges ${JSON.stringify(result)}; kills ${kills.length}`);
  // A connection a killed worker was carrying dies with it (at most one per loop);
  // any dialled after a kill, or through the reloads, must succeed.
  const failed = outcomes.filter((o) => o.result !== "ok");
  const cutByKill = failed.filter((o) => kills.some((k) => o.startedAt <= k.at && o.endedAt >= k.at));
  t.deepEqual(failed.filter((o) => !cutByKill.includes(o)), [], "failures not explained by a kill");
  t.true(cutByKill.length <= LOOPS * kills.length);
  t.is(result.errors.ECONNREFUSED ?? 0, 0);
});
