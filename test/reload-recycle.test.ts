// A worker whose generation drained with nothing cut comes back as a spare
// (supervisor/workers/spare-workers.ts): reloads then start no process at all.
// Checked from outside: the supervisor's children stay the same processes
// across reloads under load, the recycled ones serve the new config as the
// unprivileged user, their fd tables are what they were as fresh spares, their
// access-log lines and metrics are counted once; and where a worker must not
// be reused (--worker-generations 1, its code replaced on disk) it exits.
import fs from "node:fs";
import path from "node:path";
import test from "ava";
import { repoRoot, startSupervisor, tempDir, type RunningSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { hold } from "./helpers/held.js";
import { pollUntil, sparesReady, supervised, until, type StatusSpare } from "./helpers/core.js";
import { app, config, linesSince, reloadVia, sighup, startLoad, status } from "./helpers/reload.js";
import { childPids, isAlive, uidOf } from "./helpers/procfs.js";
import { fdKinds, fdTable } from "./helpers/fd-table.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { DEFAULT_MAX_FREE_PIPES } from "../native/relay.js";

const byNumber = (a: number, b: number): number => a - b;

/**
 * Reloads by SIGHUP (or by `save`, a change to the config file), then waits for
 * every worker of the generation it replaced to be settled (recycled or exited).
 */
async function reloadAndSettle(sup: RunningSupervisor, save?: () => void): Promise<{ begun: number; replaced: number }> {
  const replaced = (await status(sup)).generation!;
  const r = save ? await reloadVia(sup, save, "file") : await reloadVia(sup, sighup(sup));
  if (r.ended.event !== "reload_succeeded") throw new Error(`reload failed: ${JSON.stringify(r.ended)}`);
  await sup.waitFor((l) => l.event === "generation_stopped" && l.generation === replaced, 10_000, r.begun);
  return { begun: r.begun, replaced };
}

const recycledPids = (sup: RunningSupervisor, from: number, generation: number): number[] =>
  linesSince(sup, from, (l) => l.event === "worker_recycled" && l.generation === generation).map((l) => l.pid as number).sort(byNumber);

test("drained workers come back as spares: reloads under load start no process, lose nothing, and the recycled ones serve the new config", async (t) => {
  const [a, b] = await Promise.all([startTarget("a"), startTarget("b")]);
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("svc", [port!], [a])), workers: 2 });
  t.teardown(async () => {
    await sup.stop();
    await Promise.all([a.close(), b.close()]);
  });
  const fresh = await sparesReady(sup, 2);
  const firstWorkers = (await supervised(sup)).workers;
  const children = childPids(sup.pid).sort(byNumber);
  t.deepEqual(children, [...firstWorkers, ...fresh.map((s) => s.pid)].sort(byNumber));

  const load = startLoad([port!], 8, 60_000);
  t.teardown(() => void load.stop());
  await load.progress(50);
  // Generation 2 takes the fresh spares; generation 1's workers, drained, become the spares.
  const r1 = await reloadAndSettle(sup);
  t.deepEqual(recycledPids(sup, r1.begun, r1.replaced), firstWorkers);
  const back = await sparesReady(sup, 2);
  t.deepEqual(back.map((s) => s.pid).sort(byNumber), firstWorkers);
  t.true(back.every((s: StatusSpare) => s.recycled === 1), JSON.stringify(back));
  // Their fd tables as spares that have served once (the relay's thread, started by their first generation, stays).
  const once = new Map(firstWorkers.map((pid) => [pid, fdTable(pid)]));

  // A new config: generation 3 is generation 1's processes again, and carries to b.
  await load.progress(50);
  const r2 = await reloadAndSettle(sup, () => sup.writeConfig(config(app("svc", [port!], [b]))));
  const adopted = linesSince(sup, r2.begun, (l) => l.event === "spare_adopted");
  t.deepEqual(adopted.map((l) => l.pid as number).sort(byNumber), firstWorkers);
  t.true(adopted.every((l) => l.recycled === 1));
  t.deepEqual((await supervised(sup)).workers, firstWorkers);
  await load.progress(50);
  // Still the unprivileged user: a recycled worker does not give up root twice (it could not).
  for (const pid of firstWorkers) t.is(uidOf(pid), 65534, `worker ${pid} runs as ${uidOf(pid)}`);

  // Generation 4 takes the fresh spares again; generation 1's processes come back a second time, holding what they held after the first.
  await load.progress(50);
  const r3 = await reloadAndSettle(sup);
  t.deepEqual(recycledPids(sup, r3.begun, r3.replaced), firstWorkers);
  await sparesReady(sup, 2);
  for (const [pid, before] of once) {
    const [was, now] = [fdKinds(before), fdKinds(fdTable(pid))];
    const { pipe: pipesWere = 0, ...restWas } = was;
    const { pipe: pipesNow = 0, ...restNow } = now;
    t.deepEqual(restNow, restWas, `spare ${pid}: fds ${JSON.stringify(was)} after one generation, ${JSON.stringify(now)} after two`);
    // Pipes: the relay keeps up to DEFAULT_MAX_FREE_PIPES pairs for the next connections, whatever the generation.
    t.true(pipesNow <= pipesWere + 2 * DEFAULT_MAX_FREE_PIPES, `spare ${pid}: ${pipesWere} pipe fds after one generation, ${pipesNow} after two`);
  }

  const result = await load.stop();
  t.is(result.failed + result.wrongBytes, 0, JSON.stringify(result));
  t.true(result.ok >= 150);
  // Three reloads, and the supervisor's children are the very processes it had before them.
  t.deepEqual(childPids(sup.pid).sort(byNumber), children, "a process was started or ended");
  t.is(linesSince(sup, 0, (l) => l.event === "worker_exited").length, 0);

  // The recycled workers carry to b, the new config's only target.
  const [toA, toB] = [a.connections, b.connections];
  for (let i = 0; i < 4; i++) t.is((await exchange(port!, `after ${i}`)).toString(), `after ${i}`);
  t.deepEqual([a.connections - toA, b.connections - toB], [0, 4]);
  // Every connection once in the access log and once in the metrics, whichever process life carried it.
  const carried = result.ok + 4;
  const accessLines = (): number => linesSince(sup, 0, (l) => "end" in l).length;
  await pollUntil(() => accessLines() >= carried, 10_000);
  t.is(accessLines(), carried, "access-log lines");
  const samples = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(samples, "switchyard_connections_total", { app: "svc" }), carried);
});

test("--worker-generations 1: every drained worker exits, and the spares are new processes", async (t) => {
  const target = await startTarget("a");
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("svc", [port!], [target])), workers: 2, args: ["--worker-generations", "1"] });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  await sparesReady(sup, 2);
  const first = (await supervised(sup)).workers;
  const r = await reloadAndSettle(sup);
  t.deepEqual(recycledPids(sup, r.begun, r.replaced), []);
  const exited = linesSince(sup, r.begun, (l) => l.event === "worker_exited" && l.generation === r.replaced);
  t.deepEqual(exited.map((l) => l.pid as number).sort(byNumber), first);
  t.deepEqual(first.filter(isAlive), []);
  const spares = await sparesReady(sup, 2);
  t.deepEqual(spares.filter((s) => first.includes(s.pid)), []);
  t.is((await exchange(port!, "x")).toString(), "x");
});

/**
 * A copy of this checkout's program (bin, dist, the native build; node_modules
 * linked) in a temporary directory: a test may change its files as an install
 * would, with no effect on the supervisors of other tests.
 */
function privateInstall(): string {
  const root = tempDir("switchyard-install-");
  for (const dir of ["bin", "dist", "native/build"]) fs.cpSync(path.join(repoRoot, dir), path.join(root, dir), { recursive: true });
  fs.copyFileSync(path.join(repoRoot, "package.json"), path.join(root, "package.json"));
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(root, "node_modules"));
  return root;
}

test("a worker or spare whose code was replaced on disk is not reused: the next generation runs the new code", async (t) => {
  const install = privateInstall();
  const target = await startTarget("a");
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ cli: path.join(install, "bin", "switchyard.js"), config: config(app("svc", [port!], [target])), workers: 1, args: ["--spare-workers", "1"] });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
    fs.rmSync(install, { recursive: true, force: true });
  });
  const [spare] = await sparesReady(sup, 1);
  const [first] = (await supervised(sup)).workers;
  // An install replaces the worker's code: either entry the supervisor may run (the bundle or the
  // modules'), both with the same newer time, so which one it picks does not change.
  const installed = new Date(Date.now() + 1000);
  const entries = ["bundle.js", "main.js"].map((f) => path.join(install, "dist", "worker", f)).filter((f) => fs.existsSync(f));
  t.true(entries.length > 0);
  for (const f of entries) fs.utimesSync(f, installed, installed);
  const r = await reloadAndSettle(sup);
  // Neither the worker nor the spare loaded before the install serves again: the new generation is a new process.
  t.deepEqual(recycledPids(sup, r.begun, r.replaced), []);
  t.deepEqual(linesSince(sup, r.begun, (l) => l.event === "spare_adopted"), []);
  await sup.waitFor((l) => l.event === "worker_exited" && l.pid === first, 5000, r.begun);
  const [now] = (await supervised(sup)).workers;
  t.false([first, spare!.pid].includes(now!), `generation ${r.replaced + 1} runs in ${now}, loaded before the install`);
  await until(() => !isAlive(first!) && !isAlive(spare!.pid), 5000, "the processes loaded before the install gone");
  t.is((await exchange(port!, "x")).toString(), "x");
});

test("forty reloads on recycled workers: a process's fds as a spare stay what they were after its first generation, and --worker-generations retires it", async (t) => {
  const LIMIT = 5;
  const target = await startTarget("a");
  // Many listeners: a generation that left its sockets behind in a recycled process would show by twenty at a time.
  const ports = await freePorts(20);
  const sup = await startSupervisor({ config: config(app("svc", ports, [target])), workers: 1, args: ["--spare-workers", "1", "--worker-generations", String(LIMIT), "--access-log", "off"] });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  await sparesReady(sup, 1);
  /** Each process's fd table the first time it was seen as a spare after serving. */
  const firstAsRecycled = new Map<number, Map<number, string>>();
  let compared = 0;
  for (let i = 0; i < 40; i++) {
    // Every generation carries a connection (its relay thread started, its balancer and DNS cache used), then drains.
    const port = ports[i % ports.length]!;
    t.is((await exchange(port, `reload ${i}`)).toString(), `reload ${i}`);
    await reloadAndSettle(sup);
    const [spare] = await sparesReady(sup, 1);
    if (spare!.recycled === 0) continue;
    const now = fdTable(spare!.pid);
    const first = firstAsRecycled.get(spare!.pid);
    if (!first) {
      firstAsRecycled.set(spare!.pid, now);
      continue;
    }
    const { pipe: pipesWere = 0, ...restWas } = fdKinds(first);
    const { pipe: pipesNow = 0, ...restNow } = fdKinds(now);
    t.deepEqual(restNow, restWas, `spare ${spare!.pid} after ${spare!.recycled} generations`);
    t.true(pipesNow <= pipesWere + 2 * DEFAULT_MAX_FREE_PIPES);
    compared += 1;
  }
  t.true(compared >= 10, `only ${compared} comparisons`);
  // Generations per process, from the workers' own start lines: never more than the limit, and the limit reached.
  const served = new Map<number, number>();
  for (const l of linesSince(sup, 0, (l) => l.event === "worker_started")) served.set(l.pid as number, (served.get(l.pid as number) ?? 0) + 1);
  t.true(Math.max(...served.values()) === LIMIT, JSON.stringify([...served]));
  const retired = [...served].filter(([, n]) => n === LIMIT).map(([pid]) => pid);
  t.true(retired.length >= 3, JSON.stringify([...served]));
  for (const pid of retired) {
    if ((await supervised(sup)).all.includes(pid)) continue; // the last one may still serve its fifth
    t.like(linesSince(sup, 0, (l) => l.event === "worker_exited" && l.pid === pid)[0], { code: 0, signal: null });
  }
  const now = await supervised(sup);
  t.is(now.all.length, 2);
  t.deepEqual(childPids(sup.pid).sort(byNumber), now.all);
});

test("a stop while a generation drains for the spares: its worker exits when its last connection ends, not recycled", async (t) => {
  const target = await startTarget("a");
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("svc", [port!], [target])), workers: 1, drainTimeout: 30 });
  t.teardown(async () => {
    await sup.stop("SIGKILL");
    await target.close();
  });
  await sparesReady(sup, 1);
  const conn = await hold(port!);
  t.teardown(() => conn.socket.destroy());
  t.deepEqual(await conn.roundTrip(Buffer.from("held")), Buffer.from("held"));
  const [old] = (await supervised(sup)).workers;
  // The reload tells the old worker to drain for the spares; the held connection keeps it draining.
  const r = await reloadVia(sup, sighup(sup));
  t.is(r.ended.event, "reload_succeeded");
  const mark = sup.logs.length;
  const exited = sup.stop("SIGTERM");
  await sup.waitFor((l) => l.event === "supervisor_stopping", 5000, mark);
  t.deepEqual(await conn.roundTrip(Buffer.from("still")), Buffer.from("still"));
  conn.socket.end();
  // It exits (code 0), or, when its drain ended before it read the stop's message, comes back
  // as a spare that the stopping supervisor discards (no code: it was no longer its child's worker).
  const exit = await sup.waitFor((l) => l.event === "worker_exited" && l.pid === old, 10_000, mark);
  t.true(exit.signal === null && (exit.code === 0 || exit.code === null), JSON.stringify(exit));
  t.deepEqual(await exited, { code: 0, signal: null });
  t.deepEqual(linesSince(sup, mark, (l) => l.event === "worker_recycled"), []);
  t.false(isAlive(old!));
});
