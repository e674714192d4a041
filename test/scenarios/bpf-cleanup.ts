// Scenario, run by test/bpf-cleanup.test.ts inside `unshare -n`: a BPF-mode
// supervisor is stopped by SIGTERM, then another one killed by SIGKILL; after
// each, neither the sk_lookup link nor the program nor its maps remain. They are
// identified by the ids seen while it ran: other namespaces may hold their own.
import { execFileSync } from "node:child_process";

import { isAlive } from "../helpers/procfs.js";
import { until } from "../helpers/core.js";
import {
  allGone,
  listeningExcept,
  netnsIno,
  netnsLinks,
  runScenario,
  tagOf,
  workerPids,
  type Scenario,
} from "./netns-lib.js";

interface ProgInfo {
  id: number;
  type: string;
  name: string;
  map_ids?: number[];
}

/** `bpftool prog|map show id N` as JSON, or null once the kernel no longer has it. */
function bpfObject<T>(kind: "prog" | "map", id: number): T | null {
  try {
    return JSON.parse(execFileSync("bpftool", ["-j", kind, "show", "id", String(id)], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })) as T;
  } catch {
    return null;
  }
}

/** Program and map ids of `ids` the kernel still has. */
function remaining(ids: { prog: number; maps: number[] }): { prog: boolean; maps: number[] } {
  return { prog: bpfObject("prog", ids.prog) !== null, maps: ids.maps.filter((m) => bpfObject("map", m) !== null) };
}

async function stopped(s: Scenario, targetPort: number, signal: "SIGTERM" | "SIGKILL") {
  const ino = netnsIno();
  const config = { Apps: [{ Name: "a", Ports: ["7000-7999"], Targets: [`127.0.0.1:${targetPort}`] }] };
  const sup = await s.supervisor({ config, steering: "bpf", workers: 2 });
  const links = netnsLinks(ino);
  const prog = links.length === 1 ? bpfObject<ProgInfo>("prog", links[0]!.prog_id) : null;
  const ids = { prog: prog?.id ?? -1, maps: prog?.map_ids ?? [] };
  const workers = await workerPids(sup);
  const answered = await tagOf(7500);
  // The app socket is dual-stack: an IPv4 client must still be logged as IPv4, not ::ffff:127.0.0.1.
  const access = await sup.waitFor((l) => l.port === 7500 && "client_addr" in l, 5000);
  const whileRunning = { links, prog: prog && { type: prog.type, name: prog.name, maps: ids.maps.length }, workers: workers.length, answered, clientAddr: access.client_addr };

  sup.child.kill(signal);
  const exit = await sup.exited;
  // The kernel closes a process's fds before its parent learns it exited.
  const atExit = { links: netnsLinks(ino), workersAlive: workers.filter(isAlive).length };
  // After SIGKILL the workers notice the lost IPC channel and drain by themselves.
  await allGone(workers);
  const afterWorkers = { links: netnsLinks(ino), answered: await tagOf(7500), listening: listeningExcept([targetPort]) };
  // Freeing a program and its maps is deferred in the kernel (RCU): no event says when, so poll, bounded.
  let left = remaining(ids);
  try {
    await until(() => {
      left = remaining(ids);
      return !left.prog && left.maps.length === 0;
    }, 5000, "the program and its maps to be freed", 20);
  } catch {
    // reported as `left`
  }
  return { exit, whileRunning, atExit, afterWorkers, left };
}

runScenario(async (s) => {
  const a = await s.target("a");
  const before = netnsLinks(netnsIno());
  const sigterm = await stopped(s, a.port, "SIGTERM");
  const sigkill = await stopped(s, a.port, "SIGKILL");
  return { before, sigterm, sigkill };
});
