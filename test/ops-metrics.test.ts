// /metrics counts what a test carried, per app, across a reload: while the old
// generation still drains a connection (so old, new and retired workers all
// contribute) and after it is gone, without losing or double counting; and
// promtool accepts every scrape.
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { startSupervisor, type RunningSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { app, config, isWorkerDone, reloadVia, sighup } from "./helpers/reload.js";
import { within } from "./helpers/core.js";
import { parseMetrics, promtoolCheck, promtoolPath, sampleValue, type Sample } from "./helpers/prom.js";

const X_PAYLOAD = 100;
const Y_PAYLOAD = 250;
const HOLD = "held connection\n";

async function exchanges(port: number, n: number, size: number): Promise<void> {
  // A few at a time, so both workers take some.
  const one = async (): Promise<void> => {
    const payload = Buffer.alloc(size, 0x61);
    const reply = await exchange(port, payload);
    if (!reply.equals(payload)) throw new Error(`wrong echo on ${port}: ${reply.length} bytes`);
  };
  for (let i = 0; i < n; i += 4) await Promise.all(Array.from({ length: Math.min(4, n - i) }, one));
}

test("connections and bytes per app are exact across a reload, scraped during and after the drain; promtool passes", async (t) => {
  const promtool = promtoolPath();
  if (!promtool) t.log("promtool not installed (Debian package prometheus; `make test` installs it): lint skipped");
  const targets = await Promise.all(["x1", "y1", "x2", "y2"].map((n) => startTarget(n)));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [x1, y1, x2, y2] = targets as [(typeof targets)[0], (typeof targets)[0], (typeof targets)[0], (typeof targets)[0]];
  const [px, py] = (await freePorts(2)) as [number, number];
  const sup = await startSupervisor({ config: config(app("x", [px], [x1]), app("y", [py], [y1])), workers: 2, drainTimeout: 20, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop("SIGKILL"));

  const scrape = async (what: string): Promise<Sample[]> => {
    const res = await sup.admin("/metrics");
    t.is(res.status, 200, what);
    if (promtool) {
      const lint = await promtoolCheck(promtool, res.body);
      t.is(lint.code, 0, `promtool on the scrape ${what}: ${lint.output}`);
    }
    return parseMetrics(res.body);
  };
  const expectCounts = (s: Sample[], x: number, y: number, what: string) => {
    t.is(sampleValue(s, "switchyard_connections_total", { app: "x" }), x, `x connections ${what}`);
    t.is(sampleValue(s, "switchyard_connections_total", { app: "y" }), y, `y connections ${what}`);
  };
  const expectBytes = (s: Sample[], app: string, bytes: number, what: string) => {
    for (const direction of ["in", "out"]) t.is(sampleValue(s, "switchyard_bytes_total", { app, direction }), bytes, `${app} bytes ${direction} ${what}`);
  };

  // Generation 1.
  await exchanges(px, 7, X_PAYLOAD);
  await exchanges(py, 5, Y_PAYLOAD);
  let s = await scrape("before the reload");
  expectCounts(s, 7, 5, "before the reload");
  expectBytes(s, "x", 7 * X_PAYLOAD, "before the reload");
  expectBytes(s, "y", 5 * Y_PAYLOAD, "before the reload");
  t.is(sampleValue(s, "switchyard_workers", { generation_state: "serving" }), 2);
  t.is(sampleValue(s, "switchyard_reloads_total", { result: "success" }), 0);

  // A connection through generation 1 that stays open keeps it draining.
  const held = net.connect({ port: px, host: "127.0.0.1", allowHalfOpen: true });
  t.teardown(() => held.destroy());
  let echoed = "";
  held.setEncoding("utf8").on("data", (c: string) => (echoed += c));
  await once(held, "connect");
  held.write(HOLD);
  await within((async () => { while (echoed.length < HOLD.length) await once(held, "data"); })(), 5000, "echo on the held connection");

  sup.writeConfig(config(app("x", [px], [x2]), app("y", [py], [y2])));
  const r = await reloadVia(sup, sighup(sup), (src) => src.split(",").includes("sighup"));
  t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
  const oldGen = (r.ended.generation as number) - 1;
  // The supervisor's own line: the idle old worker is done, exited or a spare again (a worker's "drained" line could precede the supervisor's receipt).
  await sup.waitFor((l) => isWorkerDone(l) && l.generation === oldGen, 10_000, r.begun);

  // During the drain: one old worker is gone (its counts retired), one still holds the connection.
  s = await scrape("during the drain");
  t.is(sampleValue(s, "switchyard_workers", { generation_state: "draining" }), 1, "draining workers");
  t.is(sampleValue(s, "switchyard_workers", { generation_state: "serving" }), 2);
  expectCounts(s, 8, 5, "during the drain");
  t.is(sampleValue(s, "switchyard_connections_active", { app: "x" }), 1);

  await exchanges(px, 4, X_PAYLOAD);
  await exchanges(py, 3, Y_PAYLOAD);
  t.is(x2.connections, 4, "new x connections went to the new target");
  t.is(y2.connections, 3, "new y connections went to the new target");
  // Concurrent scrapes, still during the drain, agree with each other.
  const concurrent = await Promise.all([1, 2, 3].map((i) => scrape(`during the drain, concurrent #${i}`)));
  for (const c of concurrent) expectCounts(c, 12, 8, "during the drain, after more traffic");
  expectBytes(concurrent[0]!, "x", 11 * X_PAYLOAD, "during the drain (the held connection not finished)");
  expectBytes(concurrent[0]!, "y", 8 * Y_PAYLOAD, "during the drain");
  t.true(sup.logs.every((l) => !(l.event === "generation_stopped" && l.generation === oldGen)), "the old generation stopped before the scrapes");

  // The held connection finishes; its worker exits; its counts stay.
  const mark = sup.logs.length;
  held.end();
  await within(once(held, "end"), 5000, "end of the held connection");
  await sup.waitFor((l) => l.event === "generation_stopped" && l.generation === oldGen, 10_000, mark);
  s = await scrape("after the drain");
  expectCounts(s, 12, 8, "after the drain");
  expectBytes(s, "x", 11 * X_PAYLOAD + HOLD.length, "after the drain");
  expectBytes(s, "y", 8 * Y_PAYLOAD, "after the drain");
  t.is(sampleValue(s, "switchyard_connections_active", { app: "x" }), 0);
  t.is(sampleValue(s, "switchyard_connection_duration_seconds_count", { app: "x" }), 12);
  t.is(sampleValue(s, "switchyard_workers", { generation_state: "draining" }), 0);
  t.is(sampleValue(s, "switchyard_workers", { generation_state: "serving" }), 2);
  const succeeded = sup.logs.filter((l) => l.event === "reload_succeeded").length;
  t.true(succeeded >= 1);
  t.is(sampleValue(s, "switchyard_reloads_total", { result: "success" }), succeeded);
  t.is(sampleValue(s, "switchyard_reloads_total", { result: "failure" }), 0);
  t.is(sampleValue(s, "switchyard_reload_duration_seconds_count"), succeeded);
  t.is(sampleValue(s, "switchyard_target_up", { app: "x", target: `127.0.0.1:${x2.port}` }), 1);
  t.true((sampleValue(s, "process_resident_memory_bytes") ?? 0) > 0, "Node process metrics");
});

test("a failed reload is counted as a failure", async (t) => {
  const target = await startTarget("z");
  t.teardown(() => target.close());
  const [pz] = (await freePorts(1)) as [number];
  const sup: RunningSupervisor = await startSupervisor({ config: config(app("z", [pz], [target])), workers: 1, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop("SIGKILL"));
  sup.writeConfig({ Apps: [{ Name: "z", Ports: [70000], Targets: ["nowhere"] }] });
  const r = await reloadVia(sup, sighup(sup), (src) => src.split(",").includes("sighup"));
  t.is(r.ended.event, "reload_failed");
  const s = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(s, "switchyard_reloads_total", { result: "failure" }), sup.logs.filter((l) => l.event === "reload_failed").length);
  t.is(sampleValue(s, "switchyard_reloads_total", { result: "success" }), 0);
  // The old generation still serves and still counts.
  await exchanges(pz, 3, 10);
  const after = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(after, "switchyard_connections_total", { app: "z" }), 3);
});
