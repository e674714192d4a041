// A reload that cannot succeed must change nothing for traffic: a broken config,
// a port already taken, a new worker that dies while starting or never turns
// healthy. Each is rolled back under 16 client loops; the old generation (the
// same processes) keeps serving, /healthz stays 200, `ctl reload` says why.
import test, { type ExecutionContext } from "ava";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { makeFaultFile, runCli, startSupervisor, tempDir, type LogLine, type RunningSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget, type Target } from "./helpers/net.js";
import { adminGet, supervised } from "./helpers/core.js";
import { childPids, isAlive, listeningInodes } from "./helpers/procfs.js";
import { app, config, currentPids, linesSince, reloadVia, startLoad, status, type Load } from "./helpers/reload.js";

const LOOPS = 16;

interface Expected {
  code: string;
  /** What `ctl reload` must print on stderr, and /status must hold as the message. */
  reason: RegExp;
  /** Reloads the trigger causes: a file save reloads once by itself before `ctl reload` does. */
  reloads: number;
}

/** Samples GET /healthz back to back until stopped; resolves with every status seen. */
function sampleHealth(sup: RunningSupervisor): { stop(): Promise<number[]> } {
  const seen: number[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      seen.push(await adminGet(sup.adminPort, "/healthz").then((r) => r.status, () => 0));
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return { stop: async () => ((running = false), await done, seen) };
}

/**
 * Runs `before` (a save the watch may act on), then `ctl reload`, and checks
 * everything a rolled-back reload must leave as it was.
 */
async function rolledBack(t: ExecutionContext, sup: RunningSupervisor, load: Load, what: string, before: () => Promise<void>, expected: Expected): Promise<number> {
  const s0 = await status(sup);
  const generation = s0.generation;
  const pids = currentPids(s0);
  const mark = sup.logs.length;
  const health = sampleHealth(sup);
  await before();
  const ctl = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "reload"]);
  const samples = await health.stop();

  t.is(ctl.code, 1, `${what}: ctl reload exited ${ctl.code}: ${ctl.stdout}${ctl.stderr}`);
  t.regex(ctl.stderr, new RegExp(`failed: ${expected.code}: `), `${what}: ${ctl.stderr}`);
  t.regex(ctl.stderr, expected.reason, `${what}: ${ctl.stderr}`);
  t.true(samples.length > 0 && samples.every((c) => c === 200), `${what}: /healthz during the reload: ${samples.join(",")}`);

  const s1 = await status(sup);
  t.is(s1.generation, generation, `${what}: the serving generation changed`);
  t.deepEqual(currentPids(s1), pids, `${what}: the serving workers changed`);
  t.true(s1.healthy);
  t.is(s1.lastReload?.ok, false);
  t.is(s1.lastReload?.code, expected.code);
  t.is(s1.lastReload?.source, "ctl");
  t.regex(s1.lastReload?.message ?? "", expected.reason);

  // One reload_failed per reload, carrying its cause; none succeeded.
  const started = linesSince(sup, mark, (l) => l.event === "reload_started");
  const failed = linesSince(sup, mark, (l) => l.event === "reload_failed");
  t.is(started.length, expected.reloads, `${what}: ${started.length} reloads started`);
  t.is(failed.length, expected.reloads, `${what}: reload_failed logged ${failed.length} times`);
  for (const l of failed) {
    t.is(l.code, expected.code);
    t.regex(String(l.reason), expected.reason);
    t.is(l.current_generation, generation);
  }
  t.deepEqual(linesSince(sup, mark, (l) => l.event === "reload_succeeded"), []);
  // Traffic kept flowing after the attempt, on the old workers.
  await load.progress(300);
  return mark;
}

async function goodReload(t: ExecutionContext, sup: RunningSupervisor, expectGeneration: number): Promise<void> {
  const ctl = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "reload"]);
  t.is(ctl.code, 0, ctl.stderr);
  t.regex(ctl.stdout, new RegExp(`^reloaded: generation ${expectGeneration} serving`));
  const s = await status(sup);
  t.is(s.generation, expectGeneration);
  t.true(s.healthy);
  t.is(s.lastReload?.ok, true);
}

/**
 * Two workers on two ports, and the fault file every starting worker reads:
 * written just before a reload, it hits the new generation only.
 */
async function withFaultFile(t: ExecutionContext, startTimeoutSeconds: number): Promise<{ sup: RunningSupervisor; ports: number[]; faultFile: string }> {
  const target = await startTarget("echo");
  t.teardown(() => target.close());
  const ports = await freePorts(2);
  const faultFile = makeFaultFile("switchyard-fault-");
  fs.writeFileSync(faultFile, "");
  const sup = await startSupervisor({
    config: config(app("echo", ports, [target])),
    workers: 2,
    args: ["--access-log", "off", "--start-timeout", String(startTimeoutSeconds)],
    env: { SWITCHYARD_FAULT_FILE: faultFile },
  });
  t.teardown(() => sup.stop());
  return { sup, ports, faultFile };
}

function finish(t: ExecutionContext, load: Load): Promise<void> {
  return load.stop().then((r) => {
    t.log(`exchanges: ${JSON.stringify(r)}`);
    t.is(r.failed, 0, JSON.stringify(r.errors));
    t.is(r.wrongBytes, 0);
  });
}

function listenOn(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

test.serial("invalid JSON, a port in two apps, a port taken by another process: rolled back, then a good config reloads", async (t) => {
  const targets: Target[] = await Promise.all(["a", "b"].map((n) => startTarget(n)));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a, b] = targets as [Target, Target];
  const ports = await freePorts(2);
  const good = config(app("echo", ports, [a]));
  const sup = await startSupervisor({ config: good, workers: 2, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop());
  await sup.waitFor((l) => l.event === "config_watch_started");
  const load = startLoad(ports, LOOPS, 60_000);
  try {
    await load.progress(300);
    // The file is watched: a save reloads (and fails) by itself, then `ctl reload` fails the same way.
    const save = (content: unknown) => async () => {
      const r = await reloadVia(sup, () => sup.writeConfig(content), "file");
      t.is(r.ended.event, "reload_failed", JSON.stringify(r.ended));
    };

    await rolledBack(t, sup, load, "invalid JSON", save('{"Apps": [\n  {"Name": "echo", "Ports": [1]\n'), {
      code: "CONFIG_INVALID",
      reason: /config\.json: invalid JSON at line \d+, column \d+/,
      reloads: 2,
    });

    const twoApps = config(app("echo", ports, [a]), app("other", [ports[0]!], [b]));
    await rolledBack(t, sup, load, "port in two apps", save(twoApps), {
      code: "CONFIG_INVALID",
      reason: new RegExp(`Apps\\[1\\]\\.Ports\\[0\\]: port ${ports[0]} is used by both app "echo" \\(Apps\\[0\\]\\) and app "other" \\(Apps\\[1\\]\\)`),
      reloads: 2,
    });

    // `fresh` sorts before `taken`: the reload opens it, then fails on `taken`, and must close it again.
    const [fresh, taken] = (await freePorts(2)).sort((x, y) => x - y) as [number, number];
    const blocker = await listenOn(taken);
    t.teardown(() => new Promise<void>((r) => blocker.close(() => r())));
    await rolledBack(t, sup, load, "port already bound", save(config(app("echo", [...ports, fresh, taken], [a]))), {
      code: "LISTEN_FAILED",
      reason: new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken} \\(app echo\\): EADDRINUSE`),
      reloads: 2,
    });
    t.is(listeningInodes(fresh).size, 0, `the rolled-back reload left ${fresh} listening`);
    t.is(listeningInodes(taken).size, 1, "someone else listens on the taken port");
    // No generation was even started for any of the three.
    t.is(sup.logs.filter((l: LogLine) => l.event === "generation_starting").length, 1);

    // A good config afterwards: the save reloads it, and so does ctl.
    const r = await reloadVia(sup, () => sup.writeConfig(config(app("echo", ports, [b]))), "file");
    t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
    t.is(r.ended.generation, 2);
    await goodReload(t, sup, 3);
    const servedByB = b.connections;
    await load.progress(300);
    t.true(b.connections > servedByB, "the new config's target gets no traffic");
  } finally {
    await finish(t, load);
  }
});

test.serial("a new generation that dies while starting, or never turns healthy, is rolled back; the old workers serve on", async (t) => {
  const { sup, ports, faultFile } = await withFaultFile(t, 3);
  const oldPids = currentPids(await status(sup));
  t.is(oldPids.length, 2);
  const load = startLoad(ports, LOOPS, 60_000);
  try {
    await load.progress(300);
    const cases = [
      { fault: "crash-on-start", reason: /generation \d+, worker \d: worker (failed to start: FAULT_INJECTED: fault injected: crash-on-start|exited while starting)/ },
      { fault: "unhealthy", reason: /generation \d+, worker \d: worker did not become healthy within 3000 ms/ },
    ];
    let abandoned = 0;
    for (const c of cases) {
      const mark = await rolledBack(t, sup, load, c.fault, async () => fs.writeFileSync(faultFile, c.fault), { code: "WORKER_UNHEALTHY", reason: c.reason, reloads: 1 });
      fs.writeFileSync(faultFile, "");
      abandoned += 1;
      t.log(`after ${c.fault}: ${JSON.stringify(load.result)}`);
      const starting = linesSince(sup, mark, (l) => l.event === "generation_starting");
      t.is(starting.length, 1);
      const failedGen = starting[0]!.generation as number;
      t.is(linesSince(sup, mark, (l) => l.event === "generation_abandoned" && l.generation === failedGen).length, 1, `generation ${failedGen} not abandoned`);
      // Every worker of the failed generation is reaped: its exit is logged, and only the old workers remain.
      const spawned = new Set<number>();
      for (let i = 0; i < 2; i++) {
        const exited = await sup.waitFor((l) => l.event === "worker_exited" && l.generation === failedGen && l.worker === i, 10_000, mark);
        spawned.add(exited.pid as number);
      }
      for (const pid of spawned) t.false(isAlive(pid), `worker ${pid} of generation ${failedGen} is still alive`);
      // Its workers may have been spares: the spares now are others, started after the rollback or not taken.
      const now = await supervised(sup);
      t.deepEqual(now.workers, oldPids, `${c.fault}: the supervisor's workers are not the old ones`);
      t.deepEqual(now.spares.filter((x) => spawned.has(x.pid)), [], `${c.fault}: a worker of the failed generation is listed as a spare`);
      t.is(now.spares.length, 2);
      t.deepEqual(childPids(sup.pid).sort((x, y) => x - y), now.all, `${c.fault}: the supervisor's children are not the old workers and the spares`);
    }
    // With the fault gone, the next reload works; the abandoned generations used up their numbers.
    await goodReload(t, sup, 2 + abandoned);
    await load.progress(300);
  } finally {
    await finish(t, load);
  }
});

test.serial("a new worker that dies after its health check, before the rest of its generation is healthy, rolls the reload back", async (t) => {
  // A start timeout far beyond the test's waits: the rollback must come from the exit, not from it.
  const { sup, ports, faultFile } = await withFaultFile(t, 60);
  const load = startLoad(ports, LOOPS, 60_000);
  try {
    await load.progress(300);
    let killed: number | undefined;
    await rolledBack(t, sup, load, "ready worker killed", async () => {
      // New worker 1 never turns healthy; new worker 0 does, and is killed right then.
      fs.writeFileSync(faultFile, "unhealthy:1");
      const from = sup.logs.length;
      void sup.waitFor((l) => l.event === "worker_ready" && l.generation === 2 && l.worker === 0, 20_000, from).then((l) => {
        killed = l.pid as number;
        process.kill(killed, "SIGKILL");
      });
    }, { code: "WORKER_UNHEALTHY", reason: /generation 2, worker 0: worker exited \(signal SIGKILL\) before its generation served/, reloads: 1 });
    t.truthy(killed, "worker 0 of generation 2 was never ready");
    fs.writeFileSync(faultFile, "");
    await goodReload(t, sup, 3);
    await load.progress(300);
  } finally {
    await finish(t, load);
  }
});

test.serial("a FIFO put in place of the config file: the reload fails at once with the reason, and TERM still stops", async (t) => {
  const target = await startTarget("echo");
  t.teardown(() => target.close());
  const ports = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("echo", ports, [target])), workers: 1 });
  t.teardown(() => sup.stop("SIGKILL"));
  fs.rmSync(sup.configPath);
  execFileSync("mkfifo", [sup.configPath]);
  const ctl = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "reload"]);
  t.is(ctl.code, 1, ctl.stdout + ctl.stderr);
  t.regex(ctl.stderr, /not a regular file/);
  t.is(ctl.stderr.split("\n").filter((l) => l.includes("not a regular file")).length, 1, `said more than once:\n${ctl.stderr}`);
  t.is((await sup.admin("/healthz")).status, 200);
  t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });
});
