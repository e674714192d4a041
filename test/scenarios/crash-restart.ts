// Scenario, run by test/crash-restart.test.ts inside `unshare -n` (SCENARIO_MODE
// ports or bpf): the supervisor runs under test/helpers/service-manager.ts (the
// fd store, Restart=, KillMode=process) and is killed with SIGKILL again and
// again under 8 client loops, with long-lived connections opened before.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { app, config, startLoad } from "../helpers/reload.js";
import { freePorts, startTarget } from "../helpers/net.js";
import { tempDir, writeJson } from "../helpers/supervisor.js";
import { ServiceManager } from "../helpers/service-manager.js";
import { allGone, hasExited, requireFreshNetns } from "./netns-lib.js";

const mode = process.env.SCENARIO_MODE === "bpf" ? "bpf" : "ports";
const kills = Number(process.env.SCENARIO_KILLS ?? 5);

async function workerPids(adminPort: number): Promise<number[]> {
  const s = (await (await fetch(`http://127.0.0.1:${adminPort}/status`)).json()) as { workers: { pid: number | null }[] };
  return s.workers.flatMap((w) => (w.pid === null ? [] : [w.pid]));
}

/** Writes a line on each long-lived connection and counts the echoes that come back. */
async function echoAll(sockets: { socket: net.Socket; received: string }[], text: string): Promise<number> {
  for (const s of sockets) s.socket.write(`${text}\n`);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !sockets.every((s) => s.received.includes(`${text}\n`))) await new Promise((r) => setTimeout(r, 5));
  return sockets.filter((s) => s.received.includes(`${text}\n`)).length;
}

async function main(): Promise<unknown> {
  requireFreshNetns();
  const target = await startTarget("a");
  const ports = await freePorts(3);
  const dir = tempDir("switchyard-crash-");
  const configPath = path.join(dir, "config.json");
  writeJson(configPath, config(app("a", ports, [target])));
  const manager = new ServiceManager({
    args: ["--config", configPath, "--admin", "127.0.0.1:0", "--runtime-dir", path.join(dir, "run"), "--workers", "2", "--steering", mode, "--fd-store", "--access-log", "off",
      // A worker whose supervisor is gone drains this long: past every kill of this scenario, however slow the machine.
      "--drain-timeout", "120"],
    restartDelayMs: 100,
  });
  manager.start();
  let ready = await manager.waitFor((l) => l.event === "supervisor_ready");
  const long = ports.map((p) => {
    const s = { socket: net.connect(p, "127.0.0.1"), received: "" };
    s.socket.setEncoding("utf8").on("data", (d: string) => (s.received += d));
    s.socket.on("error", () => undefined);
    return s;
  });
  await echoAll(long, "hello");
  const load = startLoad(ports, 8, 200_000);
  await load.progress(200);
  const rounds: { killed: number; restartedMs: number; inherited: number; names: string[]; echoes: number }[] = [];
  const orphans: number[] = [];
  for (let i = 0; i < kills; i++) {
    const from = manager.logs.length;
    const killed = manager.mainPid;
    orphans.push(...(await workerPids(ready.admin_port as number)));
    const at = Date.now();
    process.kill(killed, "SIGKILL");
    ready = await manager.waitFor((l) => l.event === "supervisor_ready" && l.pid !== killed, 30_000, from);
    const received = manager.logs.slice(from).find((l) => l.event === "listen_fds_received");
    rounds.push({
      killed,
      restartedMs: Date.now() - at,
      inherited: (received?.count as number) ?? 0,
      names: (received?.names as string[]) ?? [],
      echoes: await echoAll(long, `round ${i}`),
    });
    await load.progress(200);
  }
  const result = await load.stop();
  const storedAtEnd = manager.storedNames();
  for (const s of long) s.socket.end();
  // The workers orphaned by each kill finish their connections and exit by themselves.
  await allGone(orphans, 40_000).catch(() => undefined);
  const orphansLeft = orphans.filter((p) => !hasExited(p));
  const lastWorkers = await workerPids(ready.admin_port as number);
  await manager.stop();
  await allGone([...lastWorkers], 30_000).catch(() => undefined);
  await target.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    mode,
    rounds,
    load: result,
    longExpected: kills * long.length,
    longEchoes: rounds.reduce((n, r) => n + r.echoes, 0),
    refusedNotifications: manager.refused.map((r) => r.text.split("\n")[0]),
    storedAtEnd,
    orphansLeft,
    lastWorkersLeft: lastWorkers.filter((p) => !hasExited(p)),
    errors: manager.logs.filter((l) => (l.level as number) >= 50).map((l) => JSON.stringify(l).slice(0, 300)),
  };
}

const deadline = setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: "scenario deadline" }) + "\n");
  process.exit(1);
}, 200_000);
main().then(
  (r) => {
    clearTimeout(deadline);
    process.stdout.write(JSON.stringify(r) + "\n");
    process.exit(0);
  },
  (err: Error) => {
    process.stdout.write(JSON.stringify({ error: String(err.stack ?? err) }) + "\n");
    process.exit(1);
  },
);
