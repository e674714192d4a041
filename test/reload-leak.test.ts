// No fd or process leak across reloads: 100 SIGHUP reloads between two
// configs leave the supervisor with the fds it had after the first, and with
// exactly the current generation's workers and its spares as children.
import test from "ava";
import crypto from "node:crypto";
import { startSupervisor, type RunningSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { adminGet, until } from "./helpers/core.js";
import { childPids, fdCount } from "./helpers/procfs.js";
import { app, config, currentPids, reloadVia, sighup, type Status } from "./helpers/reload.js";

// The watch may notice the save too and coalesce it with the signal ("file,sighup").
const bySighup = (source: string): boolean => source.split(",").includes("sighup");

const RELOADS = 100;
// A worker costs ~175 ms of CPU to start (measured: 35 s for 200 starts), so one
// per generation keeps 100 reloads near 20 s even on a busy 2-core machine.
const WORKERS = 1;

/** /status without keep-alive: a pooled admin connection would count as a supervisor fd. */
async function statusOf(sup: RunningSupervisor): Promise<Status> {
  const res = await adminGet(sup.adminPort, "/status");
  if (res.status !== 200) throw new Error(`/status answered ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as Status;
}

/** Waits for the generation before `gen` to be stopped: every old worker has exited. */
async function previousStopped(sup: RunningSupervisor, gen: number, from: number): Promise<void> {
  await sup.waitFor((l) => l.event === "generation_stopped" && l.generation === gen - 1, 10_000, from);
}

test("after 100 reloads the supervisor holds the fds it held after the first, and only the current workers and the spares", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n)));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a, b] = targets as [typeof targets[0], typeof targets[0]];
  const [shared, p1, p2] = (await freePorts(3)) as [number, number, number];
  // Different targets, and each reload closes one listener and opens another (as many as before).
  const configs = [config(app("echo", [shared, p1], [a])), config(app("echo", [shared, p2], [b]))];
  // The default access log (stdout) gives each worker a pipe, one more fd that could leak.
  const sup = await startSupervisor({ config: configs[0], workers: WORKERS, drainTimeout: 1 });
  t.teardown(() => sup.stop());

  const durations: number[] = [];
  let baseline = 0;
  const began = Date.now();
  for (let i = 1; i <= RELOADS; i++) {
    const r = await reloadVia(sup, () => {
      sup.writeConfig(configs[i % 2]);
      sighup(sup)();
    }, bySighup);
    t.is(r.ended.event, "reload_succeeded", `reload ${i}: ${JSON.stringify(r.ended)}`);
    if (r.ended.event !== "reload_succeeded") return;
    durations.push(r.ended.duration_ms as number);
    // A little traffic on every generation: accepted connections must not leave fds behind either.
    const payload = crypto.randomBytes(2048);
    const replies = await Promise.all(Array.from({ length: 4 }, () => exchange(shared, payload)));
    t.true(replies.every((x) => x.equals(payload)), `reload ${i}: wrong echo`);
    if (i === 1) {
      await previousStopped(sup, r.ended.generation as number, r.begun);
      // Stopped workers' pipes close just after their exit: take the count once it settles.
      baseline = await settledFdCount(sup.pid);
      t.log(`fds after the first reload: ${baseline}`);
    }
  }
  const reloadMs = Date.now() - began;
  const sorted = [...durations].sort((x, y) => x - y);
  t.log(`${RELOADS} reloads in ${reloadMs} ms; reload duration_ms median ${sorted[sorted.length >> 1]}, max ${sorted.at(-1)}`);

  // Once the drain timeout has passed for the last old generation, nothing is draining.
  const last = await statusOf(sup);
  await previousStopped(sup, last.generation!, 0);
  await until(async () => {
    const st = await statusOf(sup);
    return !st.reloading && st.generations.every((g) => g.state === "serving");
  }, 5000, "no reload running and no generation draining");
  const s = await statusOf(sup);
  t.deepEqual(s.generations.map((g) => g.state), ["serving"]);
  // The watch may add a reload of its own for a save; never fewer than the SIGHUPs'.
  t.true(s.generation! >= RELOADS + 1, `generation ${s.generation}`);

  // The /status calls' own connections close asynchronously: a leak stays, they do not.
  let now = fdCount(sup.pid);
  await until(() => (now = fdCount(sup.pid)) === baseline, 3000, `fd count back to ${baseline}`).catch(() => undefined);
  t.is(now, baseline, `supervisor fds: ${baseline} after the first reload, ${now} after ${RELOADS}`);
  // Children: the current generation's workers and the spares (--spare-workers defaults to --workers), nothing else.
  t.is(currentPids(s).length, WORKERS);
  t.is(s.spares.length, WORKERS);
  t.deepEqual(childPids(sup.pid).sort((x, y) => x - y), [...currentPids(s), ...s.spares.map((x) => x.pid)].sort((x, y) => x - y));
  t.log(`reloads that adopted a spare: ${sup.logs.filter((l) => l.event === "spare_adopted").length}`);
});

/** The fd count once two reads 200 ms apart agree (bounded): no event marks pipes closing. */
async function settledFdCount(pid: number): Promise<number> {
  let previous = -1;
  let current = -1;
  await until(() => {
    previous = current;
    current = fdCount(pid);
    return previous === current;
  }, 3000, "a stable fd count", 200);
  return current;
}
