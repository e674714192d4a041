// Signals as operators and systemd send them: to every process of the unit,
// and at any moment, the first milliseconds of the start included.
import test, { type ExecutionContext } from "ava";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { cli, startSupervisor, tempDir, writeJson, type LogLine, type RunningSupervisor } from "./helpers/supervisor.js";
import { sparesReady, supervised, type Supervised } from "./helpers/core.js";
import { freePorts, startTarget, whoServes } from "./helpers/net.js";
import { childPids, isAlive } from "./helpers/procfs.js";
import { app, config, hasSource, isWorkerDone, linesSince } from "./helpers/reload.js";
import path from "node:path";

/** The supervisor, its workers and its spares (all its children) get the signal, as from `systemctl kill`. */
async function everyProcess(t: ExecutionContext, sup: RunningSupervisor): Promise<Supervised> {
  const s = await supervised(sup);
  t.is(s.workers.length, 2);
  t.is(s.spares.length, 2, "--spare-workers defaults to --workers");
  t.deepEqual(childPids(sup.pid).sort((a, b) => a - b), s.all, "the supervisor's children are its workers and its spares");
  return s;
}

/**
 * One reload, successful; the old workers drained as at every reload, and came
 * back as spares or exited 0: none was killed by the signal.
 */
async function oneReloadNoWorkerDied(t: ExecutionContext, sup: RunningSupervisor, workers: number[], mark: number): Promise<LogLine> {
  const started = await sup.waitFor((l) => l.event === "reload_started" && hasSource(l, "sighup"), 5000, mark);
  const ended = await sup.waitFor((l) => l.event === "reload_succeeded" || l.event === "reload_failed", 10_000, sup.logs.indexOf(started) + 1);
  t.is(ended.event, "reload_succeeded", JSON.stringify(ended));
  for (const pid of workers) {
    const done = await sup.waitFor((l) => isWorkerDone(l) && l.pid === pid, 10_000, mark);
    if (done.event === "worker_exited") t.like(done, { code: 0, signal: null });
  }
  t.deepEqual(linesSince(sup, mark, (l) => l.event === "worker_died"), []);
  t.is(linesSince(sup, mark, (l) => l.event === "reload_started").length, 1, "one reload");
  return ended;
}

test("HUP sent to every process (`systemctl kill -s HUP`): one reload, no worker dies of it, the loaded spares ignore it and are adopted", async (t) => {
  const target = await startTarget("a", { tag: true });
  t.teardown(() => target.close());
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("hup", [port!], [target])), workers: 2 });
  t.teardown(() => sup.stop("SIGKILL"));
  await sparesReady(sup, 2);
  const { workers, spares, all } = await everyProcess(t, sup);
  const mark = sup.logs.length;
  for (const pid of [sup.pid, ...all]) process.kill(pid, "SIGHUP");
  const ended = await oneReloadNoWorkerDied(t, sup, workers, mark);
  // The spares had their handlers (they were loaded): none died, and the reload took both.
  t.deepEqual(linesSince(sup, mark, (l) => l.event === "spare_exited"), []);
  const sparePids = spares.map((x) => x.pid).sort((a, b) => a - b);
  t.deepEqual(linesSince(sup, mark, (l) => l.event === "spare_adopted").map((l) => l.pid as number).sort((a, b) => a - b), sparePids);
  const ready = linesSince(sup, mark, (l) => l.event === "worker_ready" && l.generation === ended.generation);
  t.deepEqual(ready.map((l) => l.pid as number).sort((a, b) => a - b), sparePids, "the new generation's workers are the spares that got the HUP");
  t.is(await whoServes(port!), "a");
  t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });
});

test("HUP sent to every process while the spares still load: one reload, no worker dies of it, no spare the HUP kills is adopted", async (t) => {
  const target = await startTarget("a", { tag: true });
  t.teardown(() => target.close());
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("hup", [port!], [target])), workers: 2 });
  t.teardown(() => sup.stop("SIGKILL"));
  // At once: the spares were started just before supervisor_ready. Until a spare has
  // loaded, a HUP kills it (Node's default; Node resets inherited dispositions at its start).
  const { workers, spares, all } = await everyProcess(t, sup);
  const mark = sup.logs.length;
  for (const pid of [sup.pid, ...all]) process.kill(pid, "SIGHUP");
  t.log(`spares loaded when the HUP was sent: ${spares.filter((x) => x.ready).length} of ${spares.length}`);
  const ended = await oneReloadNoWorkerDied(t, sup, workers, mark);
  const killed = linesSince(sup, mark, (l) => l.event === "spare_exited").map((l) => l.pid as number);
  for (const l of linesSince(sup, mark, (x) => x.event === "spare_exited")) t.like(l, { signal: "SIGHUP" }, "a spare died of something else");
  const adopted = linesSince(sup, mark, (l) => l.event === "spare_adopted").map((l) => l.pid as number);
  t.deepEqual(adopted.filter((pid) => killed.includes(pid)), [], "a spare the HUP killed was adopted");
  // The new generation serves, on spares that survived or on workers started for it.
  const ready = linesSince(sup, mark, (l) => l.event === "worker_ready" && l.generation === ended.generation).map((l) => l.pid as number);
  t.is(ready.length, 2);
  for (const pid of ready) t.false(killed.includes(pid));
  t.log(`spares killed by the HUP: ${killed.length}; adopted: ${adopted.length}`);
  t.is(await whoServes(port!), "a");
  // Spares killed by it are replaced: two loaded spares again, and the children are exactly the workers and spares.
  await sparesReady(sup, 2);
  const after = await supervised(sup);
  t.deepEqual(childPids(sup.pid).sort((a, b) => a - b), after.all);
  t.deepEqual(after.workers, [...ready].sort((a, b) => a - b));
  t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });
});

test("HUP in the first moments of the start: the supervisor lives, serves, then reloads", async (t) => {
  const target = await startTarget("a", { tag: true });
  t.teardown(() => target.close());
  const [port] = await freePorts(1);
  let hupped = false;
  const sup = await startSupervisor({
    config: config(app("early", [port!], [target])),
    workers: 1,
    // The first log line: the config is not even read yet.
    onLine: (l, { pid }) => {
      if (hupped) return;
      hupped = true;
      t.is(l.event, "config_watch_started");
      process.kill(pid, "SIGHUP");
    },
  });
  t.teardown(() => sup.stop("SIGKILL"));
  const ready = sup.logs.findIndex((l) => l.event === "supervisor_ready");
  const reload = await sup.waitFor((l) => l.event === "reload_succeeded" && hasSource(l, "sighup"), 10_000, ready);
  t.true(sup.logs.indexOf(reload) > ready, "the reload ran after the first start");
  t.is(await whoServes(port!), "a");
  t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`${signal} in the first moments of the start: exit 0, no worker left`, async (t) => {
    const target = await startTarget("a");
    t.teardown(() => target.close());
    const [port] = await freePorts(1);
    const dir = tempDir();
    const file = path.join(dir, "config.json");
    writeJson(file, config(app("early", [port!], [target])));
    const child = spawn(process.execPath, [cli, "run", "--config", file, "--admin", "127.0.0.1:0", "--runtime-dir", path.join(dir, "run"), "--workers", "1", "--steering", "ports"], { stdio: ["ignore", "pipe", "pipe"] });
    t.teardown(() => void child.kill("SIGKILL"));
    const exited = once(child, "exit");
    const lines: LogLine[] = [];
    let partial = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      for (const text of parts) {
        const line = JSON.parse(text) as LogLine;
        // The first line: the signal lands before the config is read.
        if (lines.length === 0) child.kill(signal);
        lines.push(line);
      }
    });
    const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
    t.deepEqual({ code, sig }, { code: 0, sig: null });
    t.is(lines[0]?.event, "config_watch_started");
    t.true(lines.some((l) => l.event === "signal" && l.signal === signal));
    t.true(lines.some((l) => l.event === "supervisor_exited"));
    const spawned = lines.filter((l) => l.event === "worker_spawned" || l.event === "worker_ready").map((l) => l.pid as number);
    for (const pid of spawned) t.false(isAlive(pid), `worker ${pid} outlived the supervisor`);
  });
}
