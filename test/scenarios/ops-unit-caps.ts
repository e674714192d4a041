// Scenario, run by test/ops-systemd-unit.test.ts inside `unshare -n`: the
// supervisor runs under `setpriv --bounding-set` cut to the capabilities in
// SWITCHYARD_TEST_CAPS (the unit's CapabilityBoundingSet, or less). Shows
// whether BPF steering loads, a port below 1024 answers, workers drop to
// nobody, and the supervisor can SIGKILL a worker that runs as nobody
// (rolling back a generation that never turns healthy). Prints one JSON object.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";

import { makeFaultFile, tempDir, type RunningSupervisor } from "../helpers/supervisor.js";
import { isAlive, uidOf } from "../helpers/procfs.js";
import { until } from "../helpers/core.js";
import { runScenario, tagOf } from "./netns-lib.js";

const caps = (process.env.SWITCHYARD_TEST_CAPS ?? "").split(",").filter(Boolean);
const capBnd = (pid: number): string => /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "";

interface StatusJson {
  generation: number;
  generations: { number: number; workers: { pid: number }[] }[];
}

async function workerPids(sup: RunningSupervisor, generation: number): Promise<number[]> {
  const s = JSON.parse((await sup.admin("/status")).body) as StatusJson;
  return s.generations.find((g) => g.number === generation)?.workers.map((w) => w.pid) ?? [];
}

/** The nice value of every thread of a process (field 19 of /proc/PID/task/TID/stat), deduplicated and sorted. */
function niceOf(pid: number): number[] {
  const out = new Set<number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      // Fields after the command (which may hold spaces) start past its closing parenthesis: state is field 3, nice field 19.
      out.add(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]));
    } catch {
      // a thread that ended while we looked
    }
  }
  return [...out].sort((a, b) => a - b);
}

async function spares(sup: RunningSupervisor): Promise<{ pid: number; ready: boolean }[]> {
  return (JSON.parse((await sup.admin("/status")).body) as { spares: { pid: number; ready: boolean }[] }).spares;
}

async function reload(sup: RunningSupervisor): Promise<unknown> {
  const from = sup.logs.length;
  process.kill(sup.pid, "SIGHUP");
  return (await sup.waitFor((l) => l.event === "reload_succeeded" || l.event === "reload_failed", 15_000, from)).event;
}

runScenario(async (s) => {
  const a = await s.target("a");
  const config = { Apps: [{ Name: "a", Ports: [80, 5001], Targets: [`127.0.0.1:${a.port}`] }] };
  // setpriv, unlike capsh, execs the command given as plain arguments: it fits startSupervisor's `wrap`.
  const wrap = ["setpriv", `--bounding-set=-all,${caps.map((c) => `+${c.replace(/^cap_/, "")}`).join(",")}`, "--"];
  // Read by each starting worker: "unhealthy" makes the next generation fail its health check.
  const faultFile = makeFaultFile("switchyard-fault-");
  writeFileSync(faultFile, "");
  const sup = await s.supervisor({ config, steering: "bpf", workers: 1, wrap, env: { SWITCHYARD_FAULT_FILE: faultFile }, args: ["--start-timeout", "3", "--access-log", "off"] });
  const mode = sup.logs.find((l) => l.event === "supervisor_ready")?.mode;
  const tags = [await tagOf(80), await tagOf(5001)];
  const gen1 = await workerPids(sup, 1);
  const uids = gen1.map(uidOf);

  // The spare, loaded (only then is it adopted), runs at a lower priority than the supervisor until a reload takes it.
  await until(async () => (await spares(sup)).some((x) => x.ready), 20_000, "a loaded spare");
  const [spare] = await spares(sup);
  const supervisorNice = niceOf(sup.pid);
  const spareNice = niceOf(spare!.pid);
  const beforeReload = sup.logs.length;
  const reloads = [await reload(sup)];
  const adopted = sup.logs.slice(beforeReload).filter((l) => l.event === "spare_adopted").map((l) => l.pid as number);
  const gen2 = await workerPids(sup, 2);
  const workerNice = gen2.flatMap(niceOf);
  const priorityKept = sup.logs.filter((l) => l.event === "spare_priority_kept").map((l) => String(l.code));
  // A generation that never turns healthy is rolled back: its worker, already nobody, is SIGKILLed.
  writeFileSync(faultFile, "unhealthy");
  const from = sup.logs.length;
  reloads.push(await reload(sup));
  const failedStart = await sup.waitFor((l) => l.event === "worker_start_failed", 5000, from).catch(() => undefined);
  const abandonedPid = failedStart?.pid as number | undefined;
  const abandoned = sup.logs.slice(from).some((l) => l.event === "generation_abandoned");
  const exited = await sup.waitFor((l) => l.event === "worker_exited" && l.pid === abandonedPid, 5000, from).then((l) => l.signal, () => "still running");
  const abandonedAlive = abandonedPid === undefined ? [] : [isAlive(abandonedPid)];
  return {
    capBnd: capBnd(sup.pid), mode, tags, uids, reloads, abandoned, exited, abandonedAlive,
    supervisorNice, spareNice, spareAdopted: adopted.includes(spare!.pid), workerIsSpare: gen2.includes(spare!.pid), workerNice, priorityKept,
  };
});
