// Runs a scenario script (dist/test/scenarios/NAME.js) in a fresh network
// namespace with lo up, optionally without the BPF capabilities, and parses the
// one JSON line it prints. BPF is never attached to the test runner's namespace.
import type { ExecutionContext } from "ava";
import { spawn } from "node:child_process";
import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const hostNetnsIno = statSync("/proc/self/ns/net").ino;
export const DROPPED_CAPS = "cap_bpf,cap_sys_admin,cap_net_admin,cap_perfmon";

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface ScenarioRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runInNetns(t: ExecutionContext, name: string, opts: { dropCaps?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<ScenarioRun> {
  const script = fileURLToPath(new URL(`../scenarios/${name}.js`, import.meta.url));
  const node = `exec ${quote(process.execPath)} ${quote(script)}`;
  const inner = opts.dropCaps ? `exec capsh --drop=${DROPPED_CAPS} -- -c ${quote(node)}` : node;
  const started = Date.now();
  const child = spawn("unshare", ["-n", "sh", "-c", `ip link set lo up && ${inner}`], {
    env: { ...process.env, ...opts.env, SWITCHYARD_HOST_NETNS_INO: String(hostNetnsIno) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

/** The scenario's result; fails the test (showing its output) if it did not exit 0. */
export async function scenarioResult<T>(t: ExecutionContext, name: string, opts: { dropCaps?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<T> {
  const run = await runInNetns(t, name, opts);
  const last = run.stdout.trim().split("\n").pop() ?? "";
  if (run.code !== 0) {
    t.fail(`scenario ${name} exited ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr.slice(-4000)}`);
    throw new Error(`scenario ${name} failed`);
  }
  t.log(`scenario ${name}: ${run.ms} ms`);
  return JSON.parse(last) as T;
}
