// Scenario, run by test/upgrade.test.ts inside `unshare -n` (SCENARIO_MODE ports
// or bpf, SCENARIO_ROUNDS upgrades): `ctl upgrade` again and again under 8
// client loops, with long-lived connections opened before the first one; then
// a failed upgrade (the new supervisor's workers are unhealthy) and one whose
// new supervisor exits at once. Reports what the clients saw and what is left.
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { makeFaultFile, runCli } from "../helpers/supervisor.js";
import { app, config, startLoad } from "../helpers/reload.js";
import { freePorts, startTarget } from "../helpers/net.js";
import { allGone, hasExited, runScenario } from "./netns-lib.js";
import { fdKinds, fdTable } from "../helpers/fd-table.js";

const mode = process.env.SCENARIO_MODE === "bpf" ? "bpf" : "ports";
const rounds = Number(process.env.SCENARIO_ROUNDS ?? 20);

/** A connection kept open across the upgrades: each round it must still echo. */
class LongLived {
  private readonly socket: net.Socket;
  private received = "";
  closed = false;

  constructor(port: number) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.setEncoding("utf8");
    this.socket.on("data", (d: string) => (this.received += d));
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => (this.closed = true));
  }

  /** Writes a line and waits for its echo (after the target's tag line). */
  async echo(text: string, timeoutMs = 5000): Promise<boolean> {
    if (this.closed) return false;
    this.socket.write(`${text}\n`);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.closed) {
      if (this.received.includes(`${text}\n`)) return true;
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.received.includes(`${text}\n`);
  }

  close(): void {
    this.socket.end();
  }
}

/** GET on the admin port on a connection of its own, closed after the answer: no keep-alive socket left in the supervisor's fd table. */
function adminGet(port: number, pathname: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: pathname, agent: false, headers: { connection: "close" } }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

async function pidsOf(adminPort: number): Promise<{ pid: number; generation: number; version: string; workers: number[] }> {
  const s = JSON.parse(await adminGet(adminPort, "/status")) as { pid: number; generation: number; version: string; workers: { pid: number | null }[] };
  return { pid: s.pid, generation: s.generation, version: s.version, workers: s.workers.flatMap((w) => (w.pid === null ? [] : [w.pid])) };
}

function sumMetric(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, "gm"))) sum += Number(m[1]);
  return sum;
}

runScenario(async (s) => {
  // Plain echo targets (startLoad compares whole echoes), closed when the scenario ends.
  const [a, b] = [await startTarget("a"), await startTarget("b")];
  const ports = await freePorts(3);
  const faultFile = makeFaultFile("switchyard-upgrade-");
  const sup = await s.supervisor({
    config: config(app("a", ports, [a, b])),
    workers: 2,
    steering: mode,
    // Long enough for the long-lived connections to outlive every upgrade, 20 of them on a busy machine
    // (the first supervisor lives until they close; the scenario waits on its log lines).
    drainTimeout: 600,
    env: { SWITCHYARD_FAULT_FILE: faultFile },
  });
  const first = await pidsOf(sup.adminPort);
  // The first supervisor's fds once settled: its spares loaded, and the admin connection
  // the status request just made closed (it lingers a moment: a transient is no baseline).
  for (let ready = false; !ready; await new Promise((r) => setTimeout(r, 100))) {
    const st = JSON.parse(await adminGet(sup.adminPort, "/status")) as { spares: { ready: boolean }[] };
    ready = st.spares.length === 2 && st.spares.every((x) => x.ready);
  }
  let firstFds = fdKinds(fdTable(first.pid));
  for (let again = 0; again < 20; again++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = fdKinds(fdTable(first.pid));
    if (JSON.stringify(Object.entries(now).sort()) === JSON.stringify(Object.entries(firstFds).sort())) break;
    firstFds = now;
  }
  const totalBefore = async (): Promise<number> => sumMetric(await adminGet(sup.adminPort, "/metrics"), "switchyard_connections_total");
  const long = ports.map((p) => new LongLived(p));
  for (const l of long) await l.echo("hello");
  const load = startLoad(ports, 8, 200_000);
  await load.progress(100);
  // One reload first: the supervisor's own counters and histogram must carry on across the upgrades.
  const reloaded = sup.waitFor((l) => l.event === "reload_succeeded");
  process.kill(sup.pid, "SIGHUP");
  await reloaded;
  const totalsBeforeUpgrades = await totalBefore();
  const upgrades: { code: number | null; ms: number; pid?: number; stderr?: string }[] = [];
  const supervisors = [first.pid];
  const workers = [...first.workers];
  let longEchoes = 0;
  for (let i = 0; i < rounds; i++) {
    const began = Date.now();
    const r = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "--json", "upgrade"]);
    const pid = r.code === 0 ? (JSON.parse(r.stdout) as { pid: number }).pid : undefined;
    upgrades.push({ code: r.code, ms: Date.now() - began, ...(pid ? { pid } : { stderr: r.stderr }) });
    if (pid === undefined) break;
    supervisors.push(pid);
    workers.push(...(await pidsOf(sup.adminPort)).workers);
    await load.progress(50);
    for (const [j, l] of long.entries()) if (await l.echo(`round ${i} conn ${j}`)) longEchoes += 1;
  }
  const last = await pidsOf(sup.adminPort);

  // A failed upgrade: the new supervisor's workers never pass their health check.
  fs.writeFileSync(faultFile, "unhealthy");
  const unhealthy = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "upgrade"]);
  // And one whose new supervisor exits as it starts.
  fs.writeFileSync(faultFile, "upgrade-exit");
  const exits = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "upgrade"]);
  fs.rmSync(faultFile);
  // And one whose new supervisor rejects the config file (which the serving one also refused to reload).
  const good = fs.readFileSync(sup.configPath, "utf8");
  let mark = sup.logs.length;
  sup.writeConfig('{"Apps": [{"Name": "a", "Ports": ["not a port"]}]}');
  await sup.waitFor((l) => l.event === "reload_failed", 15_000, mark);
  const rejects = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "upgrade"]);
  mark = sup.logs.length;
  sup.writeConfig(good);
  await sup.waitFor((l) => l.event === "reload_succeeded", 15_000, mark);
  await load.progress(100);
  const afterFailures = await pidsOf(sup.adminPort);

  const loadResult = await load.stop();
  // Predecessors still draining report their totals every second: wait (bounded) for them to add up.
  let totalConnections = 0;
  for (const until = Date.now() + 5000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
    totalConnections = sumMetric(await adminGet(sup.adminPort, "/metrics"), "switchyard_connections_total");
    if (totalConnections >= loadResult.ok) break;
  }
  const longClosed = long.filter((l) => l.closed).length;
  const finalMetrics = await adminGet(sup.adminPort, "/metrics");
  const ownCarried = {
    reloads: sumMetric(finalMetrics, 'switchyard_reloads_total\\{result="success"\\}'),
    reloadDurations: sumMetric(finalMetrics, "switchyard_reload_duration_seconds_count"),
  };
  for (const l of long) l.close();
  // Every predecessor drains its long-lived connections' workers and exits.
  const predecessors = supervisors.filter((p) => p !== last.pid);
  const oldWorkers = workers.filter((p) => !last.workers.includes(p));
  await allGone([...predecessors, ...oldWorkers], 30_000).catch(() => undefined);
  const leftover = [...predecessors, ...oldWorkers].filter((p) => !hasExited(p));
  // What the last supervisor holds, every predecessor gone: what the first held, nothing carried along twice.
  // A transient fd (a worker being replaced, a successor's channel closing) may come and go: equal within 5 s.
  const canonical = (k: Record<string, number>): string => JSON.stringify(Object.entries(k).sort());
  let lastFds = fdKinds(fdTable(last.pid));
  for (const until = Date.now() + 5000; canonical(lastFds) !== canonical(firstFds) && Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
    lastFds = fdKinds(fdTable(last.pid));
  }
  // The last supervisor is not the scenario's child: stopped here, and its workers with it.
  process.kill(last.pid, "SIGTERM");
  await allGone([last.pid, ...last.workers], 30_000).catch(() => undefined);
  const notStopped = [last.pid, ...last.workers].filter((p) => !hasExited(p));
  for (const p of notStopped) process.kill(p, "SIGKILL");
  await Promise.all([a.close(), b.close()]);
  return {
    mode,
    upgrades,
    first: { pid: first.pid, generation: first.generation },
    last,
    unhealthy: { code: unhealthy.code, stderr: unhealthy.stderr },
    exits: { code: exits.code, stderr: exits.stderr },
    rejects: { code: rejects.code, stderr: rejects.stderr },
    afterFailures: { pid: afterFailures.pid, generation: afterFailures.generation },
    load: loadResult,
    longEchoes,
    longClosed,
    longExpected: rounds * long.length,
    totalConnections,
    leftover,
    firstFds,
    lastFds,
    notStopped,
    handedOverLines: sup.logs.filter((l) => l.event === "upgrade_handed_over").length,
    failedLines: sup.logs.filter((l) => l.event === "upgrade_failed").map((l) => l.reason),
    totalsBeforeUpgrades,
    ownCarried,
    errors: sup.logs.filter((l) => (l.level as number) >= 50).map((l) => JSON.stringify(l).slice(0, 400)),
  };
}, 240_000);
