// Scenario, run by test/bpf-busy-port.test.ts inside `unshare -n`: BPF mode
// refuses a port another socket already listens on, as ports mode does (its
// sk_lookup program runs before the kernel's listener lookup and would steal it).
// 1. start with a busy port: exits non-zero; 2. a reload adding a busy port: rolled
// back; 3. a target and the admin inside the app's ranges: refused, no loop;
// 4. ports moved between our own apps, and a port our own app socket listens on:
// no false conflict.
import { spawn } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import path from "node:path";

import { cli, runCli, tempDir, writeJson, type LogLine, type RunningSupervisor } from "../helpers/supervisor.js";
import { reloadVia } from "../helpers/reload.js";
import { listeningSockets, mark, range, runScenario, tagOf, tagsOf } from "./netns-lib.js";

/** A tagging echo server on a fixed port: the "other process" whose port must not be stolen. */
async function plainListener(host: string, port: number, tag: string): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => s.destroy());
    s.write(`${tag}\n`);
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  return server;
}

/** A run that had to exit by itself; also the shape test/bpf-busy-port.test.ts reads. */
export interface Refused {
  code: number | null;
  signal: string | null;
  stderr: string;
  events: string[];
  /** The start_failed line's reason. */
  reason?: string;
  /** What `probe` answered once the run had exited or, wrongly, become ready. */
  probeTag: string;
  ms: number;
}

/**
 * `switchyard run` that must exit by itself. If it becomes ready instead, the
 * probe shows what it took over, then it is stopped; a run that does neither is
 * stopped (TERM, then KILL) after `ms`, so the scenario ends with a result.
 */
async function runExpectingExit(config: unknown, admin: string, probe: number, ms = 15_000): Promise<Refused> {
  const dir = tempDir();
  const file = path.join(dir, "config.json");
  writeJson(file, config);
  const args = [cli, "run", "--config", file, "--steering", "bpf", "--admin", admin, "--runtime-dir", path.join(dir, "run"), "--workers", "1"];
  const t0 = Date.now();
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = once(child, "exit") as Promise<[number | null, string | null]>;
  let stdout = "";
  let stderr = "";
  let becameReady!: () => void;
  const ready = new Promise<void>((resolve) => (becameReady = resolve));
  child.stdout.setEncoding("utf8").on("data", (c: string) => {
    stdout += c;
    if (stdout.includes('"event":"supervisor_ready"')) becameReady();
  });
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const term = setTimeout(() => child.kill("SIGTERM"), ms);
  const kill = setTimeout(() => child.kill("SIGKILL"), ms + 5_000);
  await Promise.race([exited, ready]);
  const probeTag = await tagOf(probe);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  const [code, signal] = await exited;
  clearTimeout(term);
  clearTimeout(kill);
  const lines = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as LogLine);
  const failed = lines.find((l) => l.event === "start_failed");
  return { code, signal, stderr, events: lines.map((l) => String(l.event)), ...(failed ? { reason: String(failed.reason) } : {}), probeTag, ms: Date.now() - t0 };
}

const newSince = (before: string[]): string[] => listeningSockets().filter((l) => !before.includes(l));

/** Ports of our app sockets: each listens on ::ffff:127.0.0.1 (or 127.0.0.1) at an ephemeral port. */
const appSocketPorts = (): number[] =>
  listeningSockets().filter((l) => /^\[::ffff:127\.0\.0\.1\]:\d+$/.test(l)).map((l) => Number(l.slice(l.lastIndexOf(":") + 1)));

async function generation(sup: RunningSupervisor): Promise<number> {
  return (JSON.parse((await sup.admin("/status")).body) as { generation: number }).generation;
}

runScenario(async (s) => {
  const servers: net.Server[] = [];
  try {
    const ta = await s.target("a");
    const tb = await s.target("b");
    const to = (t: { port: number }): string[] => [`127.0.0.1:${t.port}`];
    const BUSY = 7777;
    servers.push(await plainListener("127.0.0.1", BUSY, "plain"));

    // 1. Start with a port another socket listens on.
    const before1 = listeningSockets();
    const startRefused = await runExpectingExit({ Apps: [{ Name: "a", Ports: ["7770-7779"], Targets: to(ta) }] }, "127.0.0.1:0", BUSY);
    const start = { ...startRefused, leftListening: newSince(before1) };

    // 2. Started fine; a reload adding the busy port is rolled back.
    const A = { Name: "a", Ports: ["8000-8009"], Targets: to(ta) };
    const sup = await s.supervisor({ config: { Apps: [A] }, steering: "bpf", workers: 2 });
    const genBefore = await generation(sup);
    const socketsBefore = listeningSockets();
    const from = mark(sup);
    // App c is new: its socket, opened by the failed prepare, must be closed again.
    const C = { Name: "c", Ports: [8020], Targets: to(tb) };
    const viaFile = await reloadVia(sup, () => sup.writeConfig({ Apps: [{ ...A, Ports: ["8000-8009", BUSY] }, C] }), "file");
    const ctl = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "reload"]);
    const reload = {
      ended: { event: viaFile.ended.event, code: viaFile.ended.code, reason: viaFile.ended.reason },
      ctl: { code: ctl.code, stderr: ctl.stderr },
      healthz: (await sup.admin("/healthz")).status,
      generation: { before: genBefore, after: await generation(sup) },
      oldTags: await tagsOf(range(8000, 8009).flatMap((port) => [{ port, host: "127.0.0.1" }, { port, host: "::1" }])),
      busyTag: await tagOf(BUSY),
      cTag: await tagOf(8020),
      steeringUpdates: sup.logs.slice(from).filter((l) => l.event === "steering_updated").length,
      generationsStarted: sup.logs.slice(from).filter((l) => l.event === "generation_starting").length,
      socketsBefore,
      socketsAfter: listeningSockets(),
    };
    await sup.stop();

    // 3. A target and the admin listener inside the app's ranges (the config of the audit).
    const target = await plainListener("127.0.0.1", 6001, "t6001");
    servers.push(target);
    const before3 = listeningSockets();
    const loopRefused = await runExpectingExit({ Apps: [{ Name: "x", Ports: ["9900-9910", "6000-6002"], Targets: ["127.0.0.1:6001"] }] }, "127.0.0.1:9901", 6001);
    const loop = { ...loopRefused, leftListening: newSince(before3) };

    // 4. No false conflict: ports move between our own apps, even ones someone has
    //    since bound (BPF does not stop a bind), and a port our app socket listens on.
    const sup2 = await s.supervisor({
      config: { Apps: [{ Name: "a", Ports: ["8100-8109"], Targets: to(ta) }, { Name: "b", Ports: ["8110-8119"], Targets: to(tb) }] },
      steering: "bpf",
      workers: 2,
    });
    servers.push(await plainListener("127.0.0.1", 8101, "late-kept"), await plainListener("127.0.0.1", 8106, "late-moved"));
    const moved = await reloadVia(sup2, () => sup2.writeConfig({
      Apps: [{ Name: "a", Ports: ["8100-8104"], Targets: to(ta) }, { Name: "b", Ports: ["8105-8119"], Targets: to(tb) }],
    }), "file");
    const movedUpdate = sup2.logs.slice(moved.begun).find((l) => l.event === "steering_updated");
    const movedTags = await tagsOf(range(8105, 8109).map((port) => ({ port, host: "127.0.0.1" })));
    const ownPorts = appSocketPorts();
    const own = ownPorts[0]!;
    const ownReload = await reloadVia(sup2, () => sup2.writeConfig({
      Apps: [{ Name: "a", Ports: ["8100-8104"], Targets: to(ta) }, { Name: "b", Ports: ["8105-8119", own], Targets: to(tb) }],
    }), "file");
    const move = {
      ended: { event: moved.ended.event, reason: moved.ended.reason },
      updated: movedUpdate,
      movedTags,
      ownPorts,
      ownEnded: { event: ownReload.ended.event, reason: ownReload.ended.reason },
      ownTags: await tagsOf([{ port: own, host: "127.0.0.1" }, { port: own, host: "::1" }]),
    };
    return { start, reload, loop, move };
  } finally {
    await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  }
});
