// Active health checks (an app's HealthCheck): one prober in the supervisor,
// its verdicts shared with every worker, kept across reloads, visible in
// /status, ctl status, /metrics and the log.
import test from "ava";
import net from "node:net";
import { runCli, startSupervisor, type LogLine, type RunningSupervisor } from "./helpers/supervisor.js";
import { freePorts, whoServes } from "./helpers/net.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { reloadVia, sighup } from "./helpers/reload.js";

/** A target that writes its name, then echoes, and counts what it accepted (probes included). */
interface CountingTarget {
  name: string;
  port: number;
  accepts: number;
  /** Resolves once it has accepted `n` connections in all. */
  accepted(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

async function countingTarget(name: string, port = 0): Promise<CountingTarget> {
  const sockets = new Set<net.Socket>();
  const waiters: { n: number; resolve(): void }[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    t.accepts += 1;
    for (const w of waiters.filter((x) => t.accepts >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
    s.write(`${name}\n`);
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const t: CountingTarget = {
    name,
    port: (server.address() as net.AddressInfo).port,
    accepts: 0,
    accepted: (n, timeoutMs = 10_000) =>
      t.accepts >= n
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${name}: ${t.accepts} of ${n} connections accepted`)), timeoutMs);
            waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
          }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return t;
}

const label = (t: CountingTarget): string => `127.0.0.1:${t.port}`;

function checkedApp(name: string, port: number, targets: string[], healthCheck: Record<string, number>): Record<string, unknown> {
  return { Name: name, Ports: [port], Addresses: ["127.0.0.1"], Targets: targets, ConnectTimeoutMs: 1000, HealthCheck: healthCheck };
}

async function metrics(sup: RunningSupervisor): Promise<ReturnType<typeof parseMetrics>> {
  const res = await sup.admin("/metrics");
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(res.body);
}

interface TargetStatus {
  target: string;
  up: boolean;
  checkedAt?: string | null;
  reason?: string;
}

async function targetsOf(sup: RunningSupervisor, app: string): Promise<TargetStatus[]> {
  const s = JSON.parse((await sup.admin("/status")).body) as { apps: { name: string; targets: TargetStatus[] }[] };
  return s.apps.find((a) => a.name === app)!.targets;
}

const isEvent = (event: string, app: string, target: string) => (l: LogLine): boolean => l.event === event && l.app === app && l.target === target;

test("a stopped target: down within Fall checks (logged once, with the reason), never dialled while down, up again after Rise checks; all down: tried anyway", async (t) => {
  const good = await countingTarget("good");
  const flaky = await countingTarget("flaky");
  const lonely = await countingTarget("lonely");
  const restarted: CountingTarget[] = [];
  t.teardown(() => Promise.all([good, flaky, lonely, ...restarted].map((x) => x.close())));
  const [port, lonelyPort] = (await freePorts(2)) as [number, number];
  const interval = 100;
  const sup = await startSupervisor({
    config: {
      Apps: [
        checkedApp("web", port, [label(flaky), label(good)], { IntervalMs: interval, TimeoutMs: 500, Rise: 2, Fall: 2 }),
        // Rise 100: once down it stays down for 10 s, though its target is back.
        checkedApp("solo", lonelyPort, [label(lonely)], { IntervalMs: interval, TimeoutMs: 500, Rise: 100, Fall: 2 }),
      ],
    },
    workers: 2,
    args: ["--access-log", "off"],
  });
  t.teardown(() => sup.stop("SIGKILL"));

  // Up until proven down, and checked: both targets are served.
  const before = new Set(await Promise.all(Array.from({ length: 6 }, () => whoServes(port))));
  t.deepEqual([...before].sort(), ["flaky", "good"]);

  const stoppedAt = Date.now();
  await flaky.close();
  const down = await sup.waitFor(isEvent("target_down", "web", label(flaky)), 10_000);
  const tookMs = Date.now() - stoppedAt;
  t.is(down.reason, "ECONNREFUSED");
  t.is(down.checks, 2);
  // Fall checks, one interval apart, the first within one interval: about 2 intervals; generous for a loaded machine.
  t.true(tookMs < 2 * interval + 1500, `down after ${tookMs} ms`);

  // A scrape asks every worker on the channel that carried the verdict, after it: the
  // answers show every worker has it. Gauge min over workers: 0 only if all see it down.
  const m = await metrics(sup);
  t.is(sampleValue(m, "switchyard_target_up", { app: "web", target: label(flaky) }), 0);
  t.is(sampleValue(m, "switchyard_target_up", { app: "web", target: label(good) }), 1);
  t.true((sampleValue(m, "switchyard_health_checks_total", { app: "web", target: label(flaky), result: "failed" }) ?? 0) >= 2);
  t.true((sampleValue(m, "switchyard_health_checks_total", { app: "web", target: label(good), result: "ok" }) ?? 0) >= 1);
  const st = (await targetsOf(sup, "web")).find((x) => x.target === label(flaky))!;
  t.is(st.up, false);
  t.is(st.reason, "ECONNREFUSED");
  t.truthy(st.checkedAt);

  // Never dialled first while down: every connection goes to good, and no worker
  // tries flaky (a dial would be refused and logged as upstream_connect_failed).
  const from = sup.logs.length;
  const served = await Promise.all(Array.from({ length: 20 }, () => whoServes(port)));
  t.deepEqual([...new Set(served)], ["good"]);
  t.is(sup.logs.slice(from).filter((l) => l.event === "upstream_connect_failed" && l.target === label(flaky)).length, 0);

  // Back: up after Rise checks.
  restarted.push(await countingTarget("flaky", flaky.port));
  const up = await sup.waitFor(isEvent("target_up", "web", label(flaky)), 10_000);
  t.is(up.checks, 2);
  t.true(restarted[0]!.accepts >= 2, `${restarted[0]!.accepts} checks reached the restarted target`);
  t.is(sup.logs.filter(isEvent("target_down", "web", label(flaky))).length, 1);
  t.is((await targetsOf(sup, "web")).find((x) => x.target === label(flaky))!.up, true);

  // Every target of an app down: tried anyway, in order (a prober's false negative is not an outage).
  await lonely.close();
  const lonelyDown = await sup.waitFor(isEvent("target_down", "solo", label(lonely)), 10_000);
  t.is(lonelyDown.reason, "ECONNREFUSED");
  restarted.push(await countingTarget("lonely", lonely.port));
  t.is(await whoServes(lonelyPort), "lonely");
  t.is((await targetsOf(sup, "solo"))[0]!.up, false, "Rise 100 keeps it down meanwhile");
});

test("one prober: a target gets one probe per interval whatever the number of workers", async (t) => {
  const run = async (workers: number): Promise<{ accepts: number; checks: number }> => {
    const target = await countingTarget(`probed-by-${workers}`);
    t.teardown(() => target.close());
    const [port] = (await freePorts(1)) as [number];
    const sup = await startSupervisor({ config: { Apps: [checkedApp("probed", port, [label(target)], { IntervalMs: 100 })] }, workers, args: ["--access-log", "off"] });
    t.teardown(() => sup.stop("SIGKILL"));
    // No client traffic: everything the target accepts is a check.
    await target.accepted(10);
    const acceptedBefore = target.accepts;
    const checks = sampleValue(await metrics(sup), "switchyard_health_checks_total", { app: "probed", target: label(target), result: "ok" }) ?? 0;
    const acceptedAfter = target.accepts;
    // One check of a target at a time: at most one accept not yet counted, or one count not yet accepted.
    t.true(checks >= acceptedBefore - 1 && checks <= acceptedAfter + 1, `${workers} workers: ${acceptedBefore}-${acceptedAfter} accepts, ${checks} checks`);
    return { accepts: acceptedAfter, checks };
  };
  const [one, three] = await Promise.all([run(1), run(3)]);
  t.log(`1 worker: ${JSON.stringify(one)}; 3 workers: ${JSON.stringify(three)}`);
});

test("the state survives a reload: a target down before SIGHUP is not dialled by the new generation's first connections", async (t) => {
  const good = await countingTarget("good");
  t.teardown(() => good.close());
  const [port, refused] = (await freePorts(2)) as [number, number];
  const dead = `127.0.0.1:${refused}`;
  const sup = await startSupervisor({
    config: { Apps: [checkedApp("web", port, [dead, label(good)], { IntervalMs: 100, Fall: 1 })] },
    workers: 2,
    args: ["--access-log", "off"],
  });
  t.teardown(() => sup.stop("SIGKILL"));
  await sup.waitFor(isEvent("target_down", "web", dead), 10_000);
  const checksBefore = sampleValue(await metrics(sup), "switchyard_health_checks_total", { app: "web", target: dead, result: "failed" }) ?? 0;

  const r = await reloadVia(sup, sighup(sup), (s) => s.split(",").includes("sighup"));
  t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
  // Round robin over two targets: without the carried state, about half of these would try dead first.
  const served = await Promise.all(Array.from({ length: 20 }, () => whoServes(port)));
  t.deepEqual([...new Set(served)], ["good"]);
  const dialled = sup.logs.slice(r.begun).filter((l) => l.event === "upstream_connect_failed" && l.target === dead);
  t.is(dialled.length, 0, JSON.stringify(dialled));

  // Same state and counters, no second transition.
  const after = (await targetsOf(sup, "web")).find((x) => x.target === dead)!;
  t.is(after.up, false);
  t.is(after.reason, "ECONNREFUSED");
  t.true((sampleValue(await metrics(sup), "switchyard_health_checks_total", { app: "web", target: dead, result: "failed" }) ?? 0) >= checksBefore);
  t.is(sup.logs.filter(isEvent("target_down", "web", dead)).length, 1);
  const table = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "status"]);
  t.is(table.code, 0, table.stderr);
  t.true(table.stdout.includes(`${dead} (DOWN: ECONNREFUSED), ${label(good)} (up)`), table.stdout);
});
