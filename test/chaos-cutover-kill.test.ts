// Fault: SIGKILL of a new worker during the cut-over, the moment it says it
// accepts (its `worker_serving` line). Its generation serves on with the other
// new worker while the slot gets a replacement; the old generation drains as
// usual. Only connections the killed worker had taken can fail: every
// connection dialled after the kill succeeds.
import test from "ava";
import { startSupervisor } from "./helpers/supervisor.js";
import { clientLoops, freePorts, startTarget, type ExchangeOutcome } from "./helpers/net.js";
import { adminGet, pollUntil } from "./helpers/core.js";
import { isAlive } from "./helpers/procfs.js";
import { app, config, currentPids, reloadVia, sighup, status } from "./helpers/reload.js";
import { report, Tally } from "./helpers/chaos.js";

const LOOPS = 8;

test("SIGKILL of a new worker as it starts accepting: the slot is refilled, nothing dialled after the kill fails", async (t) => {
  const target = await startTarget("echo");
  const ports = await freePorts(2);
  const sup = await startSupervisor({ config: config(app("echo", ports, [target])), workers: 2, drainTimeout: 2, args: ["--access-log", "off"] });
  t.teardown(async () => {
    await sup.stop("SIGKILL");
    await target.close();
  });
  const outcomes: ExchangeOutcome[] = [];
  let stop = false;
  const done = clientLoops(ports, LOOPS, () => stop, 60_000, "127.0.0.1", (o) => outcomes.push(o));
  const okCount = (): number => outcomes.filter((o) => o.result === "ok").length;
  const progress = async (n: number): Promise<void> => {
    const at = okCount() + n;
    if (!(await pollUntil(() => okCount() >= at, 20_000, 20))) throw new Error(`load stalled: ${JSON.stringify(new Tally().addOutcomes(outcomes))}`);
  };

  let victim: number | undefined;
  let killedAt = 0;
  try {
    await progress(200);
    // The worker's line and the supervisor's reload_succeeded come down different pipes, in either order.
    const killed = sup.waitFor((l) => l.event === "worker_serving" && l.generation === 2 && l.worker === 0, 15_000, sup.logs.length).then((l) => {
      victim = l.pid as number;
      process.kill(victim, "SIGKILL");
      killedAt = Date.now();
    });
    const r = await reloadVia(sup, sighup(sup));
    await killed;
    t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
    const died = await sup.waitFor((l) => l.event === "worker_died" && l.pid === victim, 10_000, r.begun);
    t.is(died.signal, "SIGKILL");
    t.is(died.generation, 2);
    const replaced = await sup.waitFor((l) => l.event === "worker_ready" && l.generation === 2 && l.worker === 0 && l.pid !== victim, 10_000, sup.logs.indexOf(died));
    t.true(isAlive(replaced.pid as number));
    const s = await status(sup);
    t.is(s.generation, 2);
    t.true(currentPids(s).includes(replaced.pid as number));
    t.is((await adminGet(sup.adminPort, "/healthz")).status, 200);
    await progress(300);
  } finally {
    stop = true;
    await done;
  }
  t.false(isAlive(victim!));
  const afterKill = new Tally().addOutcomes(outcomes.filter((o) => o.startedAt > killedAt));
  const beforeKill = new Tally().addOutcomes(outcomes.filter((o) => o.startedAt <= killedAt));
  t.log(`dialled after the kill: ${JSON.stringify(afterKill)}; before: ${JSON.stringify(beforeKill)}`);
  t.is(afterKill.failed, 0, JSON.stringify(afterKill.errors));
  // Only an exchange open on the killed worker at that instant can fail: one per loop at most.
  t.true(beforeKill.failed <= LOOPS, `${beforeKill.failed} failed`);
  const all = Tally.sum(afterKill, beforeKill);
  report(t, {
    fault: "6. SIGKILL of a new worker at cut-over",
    attempted: all.attempted,
    failed: all.failed,
    whatFailed: all.errors,
    touched: `the ${beforeKill.failed} the killed worker had taken (dialled before the kill); 0 of the ${afterKill.attempted} dialled after it`,
  });
});
