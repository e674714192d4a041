// Scenario, run by test/bpf-many-ports.test.ts inside `unshare -n`: a BPF-mode
// supervisor with 2 apps of 10,000 ports each holds one listening socket per app,
// steers every configured port (IPv4 and IPv6) to its app, refuses the others, and
// starts about as fast as with 10 ports.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

import {
  listeningExcept,
  mark,
  runScenario,
  steeredMetric,
  steeringStatus,
  tagsOf,
} from "./netns-lib.js";

const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

/** User + system CPU time a process has used so far (/proc/PID/stat fields 14 and 15). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Math.round(((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond);
}

runScenario(async (s) => {
  const a = await s.target("a");
  const b = await s.target("b");
  const config = (aPorts: string, bPorts: string) => ({
    Apps: [
      { Name: "a", Ports: [aPorts], Targets: [`127.0.0.1:${a.port}`] },
      { Name: "b", Ports: [bPorts], Targets: [`127.0.0.1:${b.port}`] },
    ],
  });

  // Startup with 10 ports (twice, around nothing else), then with 20,000: spawn →
  // supervisor_ready in wall time, and the supervisor's CPU time by then, which
  // other load on the machine does not inflate.
  const small: { wallMs: number; cpuMs: number }[] = [];
  let smallStatus: Awaited<ReturnType<typeof steeringStatus>> | undefined;
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    const sup = await s.supervisor({ config: config("10000-10004", "20000-20004"), steering: "bpf", workers: 2 });
    small.push({ wallMs: Math.round(performance.now() - t0), cpuMs: cpuMs(sup.pid) });
    smallStatus ??= await steeringStatus(sup);
    await sup.stop();
  }
  const t0 = performance.now();
  const sup = await s.supervisor({ config: config("10000-19999", "20000-29999"), steering: "bpf", workers: 2 });
  const large = { wallMs: Math.round(performance.now() - t0), cpuMs: cpuMs(sup.pid) };
  const ready = sup.logs.find((l) => l.event === "supervisor_ready");
  const steeringUpdated = sup.logs.find((l) => l.event === "steering_updated");

  const fixedPorts = [sup.adminPort, a.port, b.port];
  const listening = listeningExcept(fixedPorts);
  const status = await steeringStatus(sup);

  // 200 connections to random configured ports, one in four over IPv6.
  const dials = Array.from({ length: 200 }, (_, i) => ({
    port: 10000 + Math.floor(Math.random() * 20000),
    host: i % 4 === 0 ? "::1" : "127.0.0.1",
  }));
  const tags = await tagsOf(dials);
  const misrouted = dials
    .map((d, i) => ({ ...d, got: tags[i]!, want: d.port < 20000 ? "a" : "b" }))
    .filter((d) => d.got !== d.want);
  const edges: Record<string, string[]> = {};
  for (const port of [10000, 19999, 20000, 29999]) edges[port] = await tagsOf([{ port, host: "127.0.0.1" }, { port, host: "::1" }]);

  // Not configured: below, between (none), above the ranges.
  const unconfigured: Record<string, string[]> = {};
  for (const port of [9999, 30000]) unconfigured[port] = await tagsOf([{ port, host: "127.0.0.1" }, { port, host: "::1" }]);

  const from = mark(sup);
  const statusAfter = await steeringStatus(sup);
  const metric = await steeredMetric(sup);
  const workerErrors = sup.logs.slice(from).filter((l) => l.event === "worker_died").length;

  return {
    small,
    large,
    smallStatus,
    ready,
    steeringUpdated,
    fixedPorts,
    listening,
    status: { ...status, apps: status.apps.map((x) => ({ name: x.name, ports: x.ports })) },
    dialled: { total: dials.length, ipv6: dials.filter((d) => d.host === "::1").length, misrouted },
    edges,
    unconfigured,
    steered: Object.fromEntries(statusAfter.apps.map((x) => [x.name, x.steered])),
    metric,
    workerErrors,
  };
});
