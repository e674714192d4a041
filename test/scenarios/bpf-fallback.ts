// Scenario, run by test/bpf-fallback.test.ts inside `unshare -n` under
// `capsh --drop=cap_bpf,cap_sys_admin,cap_net_admin,cap_perfmon`: `--steering
// auto` falls back to one socket per port and says why, once; `--steering bpf`
// refuses to start and says what is missing.
import { readFileSync } from "node:fs";
import path from "node:path";

import { runCli, tempDir, writeJson } from "../helpers/supervisor.js";
import { listeningExcept, listeningSockets, runScenario, steeringStatus, tagsOf } from "./netns-lib.js";

/** CapEff of this process, as the hex string in /proc/self/status. */
const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "";

runScenario(async (s) => {
  const a = await s.target("a");
  const ports = [5001, 5002, 5003, 5004, 5005];
  const config = { Apps: [{ Name: "a", Ports: [5001, 5002, "5003-5005"], Targets: [`127.0.0.1:${a.port}`] }] };

  const sup = await s.supervisor({ config, steering: "auto", workers: 2 });
  const ready = sup.logs.find((l) => l.event === "supervisor_ready");
  const fallbacks = sup.logs.filter((l) => l.event === "steering_fallback");
  const status = await steeringStatus(sup);
  const listening = listeningExcept([sup.adminPort, a.port]);
  const tags = await tagsOf(ports.flatMap((port) => [{ port, host: "127.0.0.1" }, { port, host: "::1" }]));
  const ctl = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "status"]);
  await sup.stop();

  // --steering bpf: must exit by itself, non-zero, before opening anything.
  const dir = tempDir();
  const file = path.join(dir, "config.json");
  writeJson(file, config);
  const before = listeningSockets();
  const t0 = Date.now();
  const strict = await runCli([
    "run", "--config", file, "--steering", "bpf", "--admin", "127.0.0.1:0",
    "--runtime-dir", path.join(dir, "run"), "--workers", "1",
  ]);
  const strictMs = Date.now() - t0;
  const logEvents = strict.stdout.split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { event?: string }).event);

  return {
    capEff,
    ready: { mode: ready?.mode },
    fallbacks,
    status,
    listening,
    tags,
    ctl: { code: ctl.code, stdout: ctl.stdout },
    strict: { code: strict.code, stderr: strict.stderr, logEvents, ms: strictMs, leftListening: listeningSockets().filter((l) => !before.includes(l)) },
  };
});
