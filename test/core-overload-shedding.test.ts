// Load shedding: a worker whose event loop falls behind stops accepting, so
// new connections wait in the kernel's queue for the other worker instead of
// adding to the lagging one's latency; logged once, counted, nothing fails.
import test from "ava";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { makeFaultFile, startSupervisor } from "./helpers/supervisor.js";
import { clientLoops, freePorts, startTarget } from "./helpers/net.js";
import { app, config, reloadVia, sighup, status } from "./helpers/reload.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { closeFd, listenTcp } from "../native/index.js";

test("a worker whose loop lags stops accepting while it lags; the other takes the new connections; 0 failed", async (t) => {
  const target = await startTarget("echo");
  const ports = await freePorts(1);
  const faultFile = makeFaultFile("switchyard-overload-");
  const sup = await startSupervisor({ config: config(app("busy", ports, [target])), workers: 2, args: ["--access-log", "off", "--overload-lag", "100"], env: { SWITCHYARD_FAULT_FILE: faultFile } });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  // The next generation's worker 1 holds its loop 300 ms out of every 350.
  fs.writeFileSync(faultFile, "lag:1");
  const r = await reloadVia(sup, sighup(sup));
  t.is(r.ended.event, "reload_succeeded");
  fs.rmSync(faultFile);
  const shedding = await sup.waitFor((l) => l.event === "overload_shedding", 10_000, r.begun);
  t.is(shedding.worker, 1);
  t.true((shedding.loop_delay_p99_ms as number) > 100);
  const acceptedBy = async (): Promise<number[]> => {
    const s = (await status(sup)) as unknown as { generation: number; generations: { number: number; workers: { index: number; accepted: number | null }[] }[] };
    const g = s.generations.find((x) => x.number === s.generation)!;
    return [...g.workers].sort((a, b) => a.index - b.index).map((w) => w.accepted ?? 0);
  };
  const before = await acceptedBy();
  let done = 0;
  // Well inside the 5 s the fault lasts.
  const result = await clientLoops(ports, 8, () => ++done > 400, 30_000);
  const after = await acceptedBy();
  t.log(`accepted per worker before ${before.join("/")}, after ${after.join("/")}; ${JSON.stringify(result)}`);
  t.is(result.failed, 0, JSON.stringify(result.errors));
  // Most, not all: on a busy machine a window may judge the lag under the threshold now and then.
  t.true(after[0]! - before[0]! >= 360, "worker 0 did not take the load");
  t.true(after[1]! - before[1]! <= 40, `the lagging worker accepted ${after[1]! - before[1]!}`);
  const metrics = parseMetrics((await sup.admin("/metrics")).body);
  t.true((sampleValue(metrics, "switchyard_overload_episodes_total") ?? 0) >= 1);

  // The fault ends: the worker catches up and accepts again, on the sockets it kept.
  const recovered = await sup.waitFor((l) => l.event === "overload_recovered" && l.worker === 1, 10_000, r.begun);
  t.true((recovered.duration_ms as number) > 0);
  t.is(sup.logs.filter((l) => l.event === "overload_shedding" && l.worker === 1 && l.generation === 2).length, 1, "one line per episode");
  const resumed = await acceptedBy();
  done = 0;
  const later = await clientLoops(ports, 8, () => ++done > 400, 30_000);
  const end = await acceptedBy();
  t.log(`after recovery ${resumed.join("/")} -> ${end.join("/")}`);
  t.is(later.failed, 0, JSON.stringify(later.errors));
  t.true(end[1]! - resumed[1]! > 0, "the recovered worker never accepted again");

  // Counted once for good: a reload that recycles the worker that shed (its process serves
  // the next generation but one) neither loses the episode nor reports it again.
  const episodes = sampleValue(parseMetrics((await sup.admin("/metrics")).body), "switchyard_overload_episodes_total");
  for (let i = 0; i < 2; i++) {
    const again = await reloadVia(sup, sighup(sup));
    t.is(again.ended.event, "reload_succeeded");
    await sup.waitFor((l) => l.event === "generation_stopped" && l.generation === (again.ended.generation as number) - 1, 10_000, again.begun);
  }
  t.true(sup.logs.some((l) => l.event === "worker_recycled" && l.generation === 2 && l.worker === 1), "the worker that shed was not recycled");
  t.is(sampleValue(parseMetrics((await sup.admin("/metrics")).body), "switchyard_overload_episodes_total"), episodes);
});

// What a shedding worker had accepted but cannot connect to a target within the
// bound (10 x --overload-lag, at least 1 s) is closed, not served ever later:
// here the target never answers a SYN and ConnectTimeoutMs is 20 s.
test("while shedding, connections still waiting for their target past the bound are closed (end overload), counted", async (t) => {
  const [proxyPort, holePort] = await freePorts(2);
  // A listening socket no one accepts on, its queue of one filled: every SYN after that is dropped.
  const hole = listenTcp("127.0.0.1", holePort!, 0);
  const fillers = [net.connect(holePort!, "127.0.0.1"), net.connect(holePort!, "127.0.0.1")];
  for (const f of fillers) f.on("error", () => undefined);
  const faultFile = makeFaultFile("switchyard-overload-");
  const cfg = (): unknown => config({ ...app("holed", [proxyPort!], []), Targets: [`127.0.0.1:${holePort}`], ConnectTimeoutMs: 20_000 });
  const sup = await startSupervisor({ config: cfg(), workers: 1, args: ["--access-log", "off", "--overload-lag", "100"], env: { SWITCHYARD_FAULT_FILE: faultFile } });
  const clients: { socket: net.Socket; openedAt: number; closedByProxyAfter?: number }[] = [];
  t.teardown(async () => {
    for (const c of clients) c.socket.destroy();
    for (const f of fillers) f.destroy();
    closeFd(hole);
    await sup.stop();
  });
  // A connection every 20 ms from before the reload: the new worker finds some in the queue as it starts serving.
  const opening = setInterval(() => {
    const c = { socket: net.connect(proxyPort!, "127.0.0.1"), openedAt: Date.now() } as (typeof clients)[number];
    c.socket.on("error", () => undefined);
    c.socket.on("close", () => (c.closedByProxyAfter ??= Date.now() - c.openedAt));
    clients.push(c);
  }, 20);
  fs.writeFileSync(faultFile, "lag");
  const r = await reloadVia(sup, sighup(sup)).finally(() => fs.rmSync(faultFile));
  t.is(r.ended.event, "reload_succeeded");
  // Opened from here on, a connection can only have been accepted by the new worker (the old one is cut at its drain deadline).
  const cutOver = clients.length;
  await sup.waitFor((l) => l.event === "overload_shedding" && l.generation === 2, 10_000, r.begun);
  clearInterval(opening);
  const recovered = await sup.waitFor((l) => l.event === "overload_recovered" && l.generation === 2, 15_000, r.begun);
  const closed = clients.slice(cutOver).filter((c) => c.closedByProxyAfter !== undefined);
  t.log(`${clients.length - cutOver} opened after the cut-over, ${closed.length} closed by the proxy after ${closed.map((c) => c.closedByProxyAfter).join(",")} ms; recovered ${JSON.stringify(recovered)}`);
  t.true(closed.length >= 1, "nothing was shed");
  // Only shed ones were closed (the rest wait on the target for 20 s): not before the bound, long before ConnectTimeoutMs.
  t.true(closed.length <= (recovered.shed as number));
  for (const c of closed) t.true(c.closedByProxyAfter! >= 1000 && c.closedByProxyAfter! < 8_000, `closed after ${c.closedByProxyAfter} ms`);
  const metrics = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(metrics, "switchyard_connection_errors_total", { app: "holed", reason: "overload" }), recovered.shed as number);
});
