// The benchmark runs in a network namespace of its own: fixed ports never clash
// with the machine's, BPF mode attaches its sk_lookup program there and nowhere
// else, and the namespace's sysctls can be tuned without touching the host's.
// main.ts re-executes itself under `unshare -n`; this file does both halves.
import { spawn } from "node:child_process";
import fs from "node:fs";
import { EPHEMERAL_RANGE } from "./layout.js";

const MARK = "SWITCHYARD_BENCH_HOST_NETNS";

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function inBenchNetns(): boolean {
  return process.env[MARK] !== undefined;
}

/** Refuses to go on in the namespace we were started from: BPF must never attach there. */
export function requireOwnNetns(): void {
  const mine = fs.readlinkSync("/proc/self/ns/net");
  if (mine === process.env[MARK]) throw new Error(`still in the host network namespace (${mine}): refusing to run`);
}

/**
 * Runs `script args` again inside `unshare -n`: loopback up, RLIMIT_NOFILE as
 * high as allowed (65536 when the hard limit permits), ephemeral ports above
 * every port the benchmark listens on, TIME_WAIT reuse for the connection-per-
 * request runs. Resolves with its exit code; SIGINT/SIGTERM are passed on.
 */
export function reexecInNetns(script: string, args: string[]): Promise<number> {
  const setup = [
    "set -e",
    "ip link set lo up",
    "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"",
    `echo '${EPHEMERAL_RANGE[0]} ${EPHEMERAL_RANGE[1]}' > /proc/sys/net/ipv4/ip_local_port_range`,
    "echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse",
    `exec ${[process.execPath, script, ...args].map(quote).join(" ")}`,
  ].join("\n");
  const child = spawn("unshare", ["-n", "bash", "-c", setup], { stdio: "inherit", env: { ...process.env, [MARK]: fs.readlinkSync("/proc/self/ns/net") } });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  process.on("SIGINT", forward("SIGINT"));
  process.on("SIGTERM", forward("SIGTERM"));
  return new Promise((resolve) => {
    child.on("error", (err) => {
      console.error(`cannot run unshare: ${err.message}`);
      resolve(1);
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** The soft RLIMIT_NOFILE of this process, from /proc. */
export function nofileLimit(): number {
  const m = fs.readFileSync("/proc/self/limits", "utf8").match(/^Max open files\s+(\d+|unlimited)/m);
  return m && m[1] !== "unlimited" ? Number(m[1]) : 1_048_576;
}
