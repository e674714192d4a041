// switchyard, run the way an operator would (bin/switchyard.js run), in one
// steering mode. Reloads: rewrite the config, then SIGHUP.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ADMIN_PORT, PROXY_PORTS, scaleApp, targets, type Service, type Variant } from "../layout.js";
import { start, stop, waitForLine, type Proc } from "../procs.js";
import { processTree } from "../procfs.js";
import { httpJson } from "../net.js";
import { writeAtomically } from "./config-file.js";
import { Unavailable, type Party, type PartySpec, type ReloadCounts, type Spare, type WorkerShare } from "./party.js";

export const cli = fileURLToPath(new URL("../../../bin/switchyard.js", import.meta.url));

export type SteeringMode = "ports" | "bpf";

/** The bench config: one app per service, IPv4 loopback only (as HAProxy binds). */
export function switchyardConfig(spec: PartySpec, variant: Variant): unknown {
  const t = targets(variant);
  const apps: unknown[] = (Object.keys(PROXY_PORTS) as Service[]).map((s) => ({ Name: s, Ports: [PROXY_PORTS[s]], Addresses: ["127.0.0.1"], Targets: t[s] }));
  const scale = scaleApp(spec.scalePorts, variant);
  if (scale) apps.push({ Name: "scale", Ports: [`${scale.first}-${scale.last}`], Addresses: ["127.0.0.1"], Targets: [scale.target] });
  return { Apps: apps };
}

interface Status {
  generations: { state: string; workers: { pid: number | null; accepted?: number | null }[] }[];
  /** Absent from versions that start no spares. */
  spares?: { pid?: number | null; ready?: boolean }[];
}

type Event = Record<string, unknown> & { event?: string };

export class Switchyard implements Party {
  readonly name: string;
  readonly proxied = true;
  private proc: Proc | undefined;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-bench-sy-"));
  readonly configPath = path.join(this.dir, "config.json");
  readonly events: Event[] = [];
  /** Milliseconds from spawn to supervisor_ready, for the last start(). */
  startupMs = 0;
  spawnedAt = 0;

  constructor(
    readonly mode: SteeringMode,
    private readonly spec: PartySpec,
  ) {
    this.name = `switchyard-${mode}`;
  }

  port(service: Service): number {
    return PROXY_PORTS[service];
  }

  async start(): Promise<void> {
    this.events.length = 0;
    writeAtomically(this.configPath, JSON.stringify(switchyardConfig(this.spec, 0)));
    const began = (this.spawnedAt = performance.now());
    const args = [cli, "run", "--config", this.configPath, "--workers", String(this.spec.workers), "--steering", this.mode, "--runtime-dir", path.join(this.dir, "run"), "--admin", `127.0.0.1:${ADMIN_PORT}`, "--access-log", "off", "--drain-timeout", "10", "--start-timeout", "60"];
    if (this.spec.maxConnectionsPerWorker !== undefined) args.push("--max-connections", String(this.spec.maxConnectionsPerWorker));
    const proc = start(this.name, process.execPath, args, { maxFiles: true });
    this.proc = proc;
    proc.onLine((l) => {
      if (!l.startsWith("{")) return;
      try {
        this.events.push(JSON.parse(l) as Event);
      } catch {
        // not a log line
      }
    });
    try {
      await waitForLine(proc, (l) => l.includes('"supervisor_ready"'), 120_000);
    } catch (err) {
      await stop(proc);
      const failed = this.events.find((e) => e.event === "start_failed");
      throw new Unavailable(failed ? `${String(failed.code)}: ${String(failed.reason)}` : (err as Error).message.split("\n")[0]!);
    }
    this.startupMs = performance.now() - began;
  }

  async reload(variant: Variant): Promise<void> {
    writeAtomically(this.configPath, JSON.stringify(switchyardConfig(this.spec, variant)));
    process.kill(this.proc!.pid, "SIGHUP");
  }

  reloadCounts(): ReloadCounts {
    return { succeeded: this.events.filter((e) => e.event === "reload_succeeded").length, failed: this.events.filter((e) => e.event === "reload_failed").length };
  }

  /** Resolves with the next log line of `event` after index `from` of `events`. */
  async nextEvent(event: string, from: number, timeoutMs: number): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.slice(from).find((e) => e.event === event);
      if (hit) return hit;
      if (Date.now() > deadline || !this.proc) throw new Error(`${this.name}: no ${event} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async workerShares(): Promise<WorkerShare[]> {
    const status = await httpJson<Status>(ADMIN_PORT, "/status");
    const serving = status.generations.find((g) => g.state === "serving");
    return (serving?.workers ?? []).map((w) => ({ pid: w.pid ?? 0, accepted: w.accepted ?? 0 }));
  }

  /**
   * Resolves once the spares the last reload (or the start) put in place are
   * loaded, as HAProxy's master CLI taking connections again says its last
   * reload is over: an operator's next reload finds them so. Reloads that come
   * faster than that are the "reloads under load" sections. Bounded: 10 s.
   */
  async whenReloadable(): Promise<void> {
    const deadline = performance.now() + 10_000;
    for (;;) {
      const spares = await this.spares();
      if ((spares.length >= this.spec.workers && spares.every((s) => s.ready)) || performance.now() > deadline) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async spares(): Promise<Spare[]> {
    const status = await httpJson<Status>(ADMIN_PORT, "/status");
    if (!Array.isArray(status.spares)) return [];
    return status.spares.flatMap((s) => (typeof s.pid === "number" ? [{ pid: s.pid, ready: s.ready === true }] : []));
  }

  pids(): number[] {
    return this.proc ? processTree(this.proc.pid) : [];
  }

  async stop(): Promise<void> {
    if (this.proc) await stop(this.proc, 15_000);
    this.proc = undefined;
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
