// Signals as operators and systemd send them: to every process of the unit,
// and at any moment, the first milliseconds of the start included.
import test from "ava";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { cli, startSupervisor, tempDir, writeJson, type LogLine } from "./helpers/supervisor.js";
import { freePorts, startTarget, whoServes } from "./helpers/net.js";
import { childPids, isAlive } from "./helpers/procfs.js";
import { app, config, hasSource, linesSince } from "./helpers/reload.js";
import path from "node:path";

test("HUP sent to every process (`systemctl kill -s HUP`): one reload, no worker dies of it", async (t) => {
  const target = await startTarget("a", { tag: true });
  t.teardown(() => target.close());
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("hup", [port!], [target])), workers: 2 });
  t.teardown(() => sup.stop("SIGKILL"));
  const workers = childPids(sup.pid);
  t.is(workers.length, 2);
  const mark = sup.logs.length;
  for (const pid of [sup.pid, ...workers]) process.kill(pid, "SIGHUP");
  const started = await sup.waitFor((l) => l.event === "reload_started" && hasSource(l, "sighup"), 5000, mark);
  const ended = await sup.waitFor((l) => l.event === "reload_succeeded" || l.event === "reload_failed", 10_000, sup.logs.indexOf(started) + 1);
  t.is(ended.event, "reload_succeeded", JSON.stringify(ended));
  // The old workers drained and exited 0, as at every reload: none was killed by the signal.
  for (const pid of workers) {
    const exited = await sup.waitFor((l) => l.event === "worker_exited" && l.pid === pid, 10_000, mark);
    t.like(exited, { code: 0, signal: null });
  }
  t.deepEqual(linesSince(sup, mark, (l) => l.event === "worker_died"), []);
  t.is(await whoServes(port!), "a");
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
