// Scenario, run by test/ops-systemd-unit.test.ts inside `unshare -n`: the
// supervisor runs under `setpriv --bounding-set` cut to the capabilities in
// SWITCHYARD_TEST_CAPS (the unit's CapabilityBoundingSet, or less). Shows
// whether BPF steering loads, a port below 1024 answers, workers drop to
// nobody, and the supervisor can SIGKILL a worker that runs as nobody
// (force-closing a generation past --max-draining). Prints one JSON object.
import { readFileSync } from "node:fs";
import net from "node:net";
import { once } from "node:events";

import type { RunningSupervisor } from "../helpers/supervisor.js";
import { isAlive, uidOf } from "../helpers/procfs.js";
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

/** A connection left open (its tag and echo read), keeping its worker draining. */
async function hold(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: "127.0.0.1" });
  s.on("error", () => undefined);
  await once(s, "connect");
  s.write("x");
  let got = "";
  s.setEncoding("utf8");
  while (!got.endsWith("x")) got += (await once(s, "data"))[0] as string;
  return s;
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
  const sup = await s.supervisor({ config, steering: "bpf", workers: 1, drainTimeout: 30, wrap, args: ["--max-draining", "1", "--access-log", "off"] });
  const mode = sup.logs.find((l) => l.event === "supervisor_ready")?.mode;
  const tags = [await tagOf(80), await tagOf(5001)];
  const gen1 = await workerPids(sup, 1);
  const uids = gen1.map(uidOf);

  const held = [await hold(5001)];
  const reloads = [await reload(sup)];
  held.push(await hold(5001));
  // Generation 1 and 2 both draining exceeds --max-draining 1: generation 1 is SIGKILLed.
  const from = sup.logs.length;
  reloads.push(await reload(sup));
  const forced = await sup.waitFor((l) => l.event === "generation_force_closed", 5000, from).then(() => true, () => false);
  const exited = await sup.waitFor((l) => l.event === "worker_exited" && l.generation === 1, 5000, from).then((l) => l.signal, () => "still running");
  const gen1Alive = gen1.map(isAlive);
  for (const h of held) h.destroy();
  return { capBnd: capBnd(sup.pid), mode, tags, uids, reloads, forced, exited, gen1Alive };
});
