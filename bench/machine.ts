// The machine and tool versions a run was made on, for the report's header.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";

export interface Machine {
  nproc: number;
  kernel: string;
  cpu: string;
  memory: string;
  nofile: number;
  versions: Record<string, string>;
}

/** First line (matching `pattern`) of what a `-v` printed: nginx and wrk print on stderr. */
function firstLine(cmd: string, args: string[], pattern?: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 5000 });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  const line = text.split("\n").find((l) => (pattern ? pattern.test(l) : l.trim() !== "")) ?? "unknown";
  return line.trim();
}

export function describeMachine(nofile: number): Machine {
  const cpu = fs.readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown";
  return {
    nproc: os.availableParallelism(),
    kernel: os.release(),
    cpu,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    nofile,
    versions: {
      node: process.version,
      haproxy: firstLine("haproxy", ["-v"]).replace(/^HAProxy version /, "").split(" ")[0]!,
      nginx: firstLine("nginx", ["-v"]).replace(/^nginx version: /, ""),
      wrk: firstLine("wrk", ["-v"], /^wrk /).split(" ").slice(0, 2).join(" "),
      iperf3: firstLine("iperf3", ["-v"]).split(" ").slice(0, 2).join(" "),
    },
  };
}
