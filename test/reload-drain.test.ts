// Draining: connections opened before reloads keep working on the old
// generation's workers, and the drain timeout is a real deadline, kept
// neither early nor late, after which the old workers are gone.
import test from "ava";
import crypto from "node:crypto";
import { startSupervisor, type LogLine } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { hold } from "./helpers/held.js";
import { isAlive } from "./helpers/procfs.js";
import { app, config, currentPids, reloadVia, sighup, status } from "./helpers/reload.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";

// The watch may notice the save too and coalesce it with the signal ("file,sighup").
const bySighup = (source: string): boolean => source.split(",").includes("sighup");

const at = (l: LogLine): number => Date.parse(String(l.time));

test.serial("20 connections opened before a reload keep exchanging data across 3 reloads", async (t) => {
  const targets = await Promise.all(["e1", "e2", "e3", "e4"].map((n) => startTarget(n)));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [port] = await freePorts(1);
  // Each reload changes the targets, so each one is a real new generation with a new plan.
  const configs = targets.map((x) => config(app("echo", [port!], [x])));
  const sup = await startSupervisor({ config: configs[0], workers: 2, drainTimeout: 20, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop());
  const firstGen = (await status(sup)).generation!;

  const conns = await Promise.all(Array.from({ length: 20 }, () => hold(port!)));
  t.teardown(() => conns.forEach((c) => c.socket.destroy()));
  const exchangeAll = async (round: number): Promise<void> => {
    const replies = await Promise.all(
      conns.map(async (c) => {
        const payload = crypto.randomBytes(1024 + Math.floor(Math.random() * 8192));
        return { payload, reply: await c.roundTrip(payload) };
      }),
    );
    const wrong = replies.filter((r) => !r.reply.equals(r.payload)).length;
    t.is(wrong, 0, `round ${round}: ${wrong} of 20 echoes differ`);
  };
  await exchangeAll(0);
  // All 20 went to the first generation (the only one), which is what must then drain.
  t.is(targets[0]!.connections, 20);

  let lastGen = firstGen;
  for (let i = 1; i <= 3; i++) {
    const r = await reloadVia(sup, () => {
      sup.writeConfig(configs[i]);
      sighup(sup)();
    }, bySighup);
    t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
    lastGen = r.ended.generation as number;
    await exchangeAll(i);
  }

  const s = await status(sup);
  const first = s.generations.find((g) => g.number === firstGen);
  t.is(first?.state, "draining", "the first generation should still be draining its 20 connections");
  t.is(first?.workers.reduce((a, w) => a + (w.connections ?? 0), 0), 20);
  t.is(s.generation, lastGen);
  t.true(lastGen >= firstGen + 3);
  // The held connections never moved: every byte went through the first targets only.
  t.is(targets[0]!.connections, 20);
  t.is(targets.slice(1).reduce((a, x) => a + x.connections, 0), 0);
  t.deepEqual(conns.flatMap((c) => (c.closedBy ? [c.closedBy] : [])), []);
});

test.serial("with a 2 s drain timeout a connection held past it is closed then; the worker that cut it exits, the idle one is a spare again", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n)));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a, b] = targets as [typeof targets[0], typeof targets[0]];
  const [port] = await freePorts(1);
  const drainSeconds = 2;
  const sup = await startSupervisor({ config: config(app("echo", [port!], [a])), workers: 2, drainTimeout: drainSeconds });
  t.teardown(() => sup.stop());
  const before = await status(sup);
  const oldGen = before.generation!;
  const oldPids = currentPids(before);
  t.is(oldPids.length, 2);

  const conn = await hold(port!);
  t.teardown(() => conn.socket.destroy());
  const payload = crypto.randomBytes(4096);
  t.true((await conn.roundTrip(payload)).equals(payload));

  // The watch may see the save and reload first: look for the cut-over from before the save.
  const saved = sup.logs.length;
  sup.writeConfig(config(app("echo", [port!], [b])));
  const r = await reloadVia(sup, sighup(sup), bySighup);
  t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
  const cutOver = await sup.waitFor((l) => l.event === "generation_draining" && l.generation === oldGen, 5000, saved);

  // Idle past the deadline: the proxy, not the client, must end it.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const closed = await Promise.race([
    conn.peerClosed,
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), (drainSeconds + 3) * 1000))),
  ]);
  clearTimeout(timer);
  t.truthy(closed, `connection still open ${drainSeconds + 3} s after the cut-over`);
  if (!closed) return;
  const heldFor = closed.at - at(cutOver);
  t.log(`closed (${closed.how}${closed.error ? ` ${closed.error}` : ""}) ${heldFor} ms after the cut-over (drain timeout ${drainSeconds * 1000} ms)`);
  t.true(heldFor >= drainSeconds * 1000 - 50, `closed ${heldFor} ms after the cut-over: before the drain timeout`);
  t.true(heldFor <= drainSeconds * 1000 + 3000);

  // The worker holding it reports the deadline; the access log says it was cut.
  const timedOut = await sup.waitFor((l) => l.event === "worker_drained" && l.generation === oldGen && l.outcome === "timeout", 5000);
  t.true(oldPids.includes(timedOut.pid!));
  const cut = await sup.waitFor((l) => l.end === "shutdown", 5000);
  t.is(cut.target, `127.0.0.1:${a.port}`);

  // The worker that cut a connection exits; the idle one drained with nothing cut and is a spare again.
  const cutter = timedOut.pid!;
  const idle = oldPids.find((p) => p !== cutter)!;
  t.like(await sup.waitFor((l) => l.event === "worker_exited" && l.pid === cutter && l.generation === oldGen, 5000), { code: 0, signal: null });
  await sup.waitFor((l) => l.event === "worker_recycled" && l.pid === idle && l.generation === oldGen, 5000);
  await sup.waitFor((l) => l.event === "generation_stopped" && l.generation === oldGen, 5000);
  t.false(isAlive(cutter));
  const after = await status(sup);
  t.true(after.spares.some((s) => s.pid === idle && s.recycled === 1), JSON.stringify(after.spares));
  t.deepEqual(after.generations.filter((g) => g.state !== "serving").map((g) => `${g.number}:${g.state}`), []);
  t.is(after.generation, r.ended.generation as number);
  t.true(after.healthy);
});

test("past --max-draining, the oldest generation's connections are closed, counted and logged, and its worker exits by itself", async (t) => {
  const target = await startTarget("echo");
  t.teardown(() => target.close());
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("echo", [port!], [target])), workers: 1, drainTimeout: 60, args: ["--max-draining", "1"] });
  t.teardown(() => sup.stop("SIGKILL"));
  const bySighup = (source: string): boolean => source.split(",").includes("sighup");

  // One held connection per generation; never a scrape before the end (the counts must come from the workers' last words).
  const first = await hold(port!);
  t.deepEqual(await first.roundTrip(Buffer.from("one")), Buffer.from("one"));
  const [gen1Pid] = currentPids(await status(sup));
  t.is((await reloadVia(sup, sighup(sup), bySighup)).ended.event, "reload_succeeded");
  const second = await hold(port!);
  t.deepEqual(await second.roundTrip(Buffer.from("two")), Buffer.from("two"));
  const mark = sup.logs.length;
  t.is((await reloadVia(sup, sighup(sup), bySighup)).ended.event, "reload_succeeded");

  // Two generations draining, one allowed: generation 1 is closed now, not at its 60 s deadline.
  await sup.waitFor((l) => l.event === "generation_force_closed" && l.generation === 1, 5000, mark);
  t.like(await first.peerClosed, { how: "end" });
  const exited = await sup.waitFor((l) => l.event === "worker_exited" && l.pid === gen1Pid, 5000, mark);
  t.like(exited, { code: 0, signal: null }, "killed instead of closing by itself");
  const line = await sup.waitFor((l) => l.client_port === first.socket.localPort && "end" in l, 5000);
  t.like(line, { app: "echo", end: "shutdown", bytes_in: 3, bytes_out: 3 });
  t.is(second.closedBy, undefined, "generation 2 is within the bound and keeps its connection");

  const samples = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(samples, "switchyard_connections_total", { app: "echo" }), 2);
  t.is(sampleValue(samples, "switchyard_connection_errors_total", { app: "echo", reason: "shutdown" }), 1);
  // Bytes count when a connection finishes: the first one's, not yet the open second's.
  t.is(sampleValue(samples, "switchyard_bytes_total", { app: "echo", direction: "in" }), 3);
});
