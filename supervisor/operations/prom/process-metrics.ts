// The process_* metrics prom-client's collectDefaultMetrics exposed, same
// names, help, types and values: CPU, start time, memory and file
// descriptors, read from process and /proc (Linux only, as the supervisor is).
import fs from "node:fs";
import { Counter, Gauge } from "./instruments.js";
import type { Registry } from "./registry.js";

/** When this process started, in whole seconds since the epoch (fixed at load, as prom-client had it). */
const startedAt = Math.round(Date.now() / 1000 - process.uptime());

/** VmRSS, VmSize and VmData of /proc/self/status, in bytes. */
function statusFields(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of fs.readFileSync("/proc/self/status", "utf8").split("\n")) {
    if (!["VmSize", "VmRSS", "VmData"].some((f) => line.startsWith(f))) continue;
    const [field, rest = ""] = line.split(":");
    const kb = rest.trim();
    out[field!] = Number(kb.slice(0, kb.length - 3)) * 1024;
  }
  return out;
}

/** The soft limit on open files, or undefined where /proc/self/limits cannot be read. */
function maxOpenFiles(): number | undefined {
  try {
    const line = fs
      .readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    return line === undefined ? undefined : Number(line.split(/  +/)[1]);
  } catch {
    return undefined;
  }
}

export function registerProcessMetrics(registry: Registry): void {
  // CPU time since registration, added up scrape by scrape (prom-client's counters did the same).
  let lastCpu = process.cpuUsage();
  const system = new Counter({ name: "process_cpu_system_seconds_total", help: "Total system CPU time spent in seconds." });
  const total = new Counter({ name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds." });
  registry.add(
    new Counter({
      name: "process_cpu_user_seconds_total",
      help: "Total user CPU time spent in seconds.",
      // One read of the CPU time for all three, in the first one's collect (the others follow it).
      collect(user) {
        const now = process.cpuUsage();
        const userMicros = now.user - lastCpu.user;
        const systemMicros = now.system - lastCpu.system;
        lastCpu = now;
        user.inc({}, userMicros / 1e6);
        system.inc({}, systemMicros / 1e6);
        total.inc({}, (userMicros + systemMicros) / 1e6);
      },
    }),
  );
  registry.add(system);
  registry.add(total);
  registry.add(new Gauge({ name: "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.", aggregator: "omit", collect: (g) => g.set({}, startedAt) }));

  const virtual = new Gauge({ name: "process_virtual_memory_bytes", help: "Virtual memory size in bytes." });
  const heap = new Gauge({ name: "process_heap_bytes", help: "Process heap size in bytes." });
  registry.add(
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      collect(resident) {
        try {
          const f = statusFields();
          resident.set({}, f.VmRSS!);
          virtual.set({}, f.VmSize!);
          heap.set({}, f.VmData!);
        } catch {
          // /proc unreadable: the last values stay
        }
      },
    }),
  );
  registry.add(virtual);
  registry.add(heap);

  registry.add(
    new Gauge({
      name: "process_open_fds",
      help: "Number of open file descriptors.",
      collect(g) {
        try {
          // Less the one readdirSync itself had open while it read.
          g.set({}, fs.readdirSync("/proc/self/fd").length - 1);
        } catch {
          // the last value stays
        }
      },
    }),
  );
  const maxFds = maxOpenFiles();
  if (maxFds !== undefined) registry.add(new Gauge({ name: "process_max_fds", help: "Maximum number of open file descriptors.", collect: (g) => g.set({}, maxFds) }));
}
