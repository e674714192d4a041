// Helpers for the BPF-mode supervisor scenarios (test/bpf-*.test.ts): each
// scenario runs inside a fresh network namespace (`unshare -n`), starts targets,
// supervisors and clients there, prints one JSON line and exits, having stopped
// everything it started, whether it succeeded or not.
import { execFileSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import crypto from "node:crypto";

import { startSupervisor, type RunningSupervisor, type SupervisorOptions } from "../helpers/supervisor.js";
import { exchange, startTarget, type Target } from "../helpers/net.js";
import { isAlive } from "../helpers/procfs.js";
import { until } from "../helpers/core.js";
import { requireIsolatedNetns } from "./steering-lib.js";

export { netnsIno, netnsLinks } from "./steering-lib.js";

/**
 * Refuses to go on unless this process runs in another network namespace than
 * the test runner (passed in SWITCHYARD_HOST_NETNS_INO) and than its parent.
 */
export function requireFreshNetns(): void {
  requireIsolatedNetns();
  const mine = readlinkSync("/proc/self/ns/net");
  const parents = readlinkSync(`/proc/${process.ppid}/ns/net`);
  if (mine === parents) throw new Error(`same network namespace as my parent (${mine}): refusing to attach BPF`);
}

export interface Scenario {
  /** startSupervisor, stopped (SIGTERM, then SIGKILL) when the scenario ends. */
  supervisor(opts: SupervisorOptions): Promise<RunningSupervisor>;
  /** A tagging echo target on 127.0.0.1, closed when the scenario ends. */
  target(name: string): Promise<Target>;
}

/**
 * Runs `main` with a deadline; prints its result (or {error}) as the one line of
 * stdout, after stopping every supervisor and target it started.
 */
export function runScenario(main: (s: Scenario) => Promise<unknown>, deadlineMs = 40_000): void {
  requireFreshNetns();
  const supervisors: RunningSupervisor[] = [];
  const targets: Target[] = [];
  const s: Scenario = {
    supervisor: async (opts) => {
      const sup = await startSupervisor(opts);
      supervisors.push(sup);
      return sup;
    },
    target: async (name) => {
      const t = await startTarget(name, { tag: true });
      targets.push(t);
      return t;
    },
  };
  const cleanup = async (): Promise<void> => {
    for (const sup of supervisors) {
      if (sup.child.exitCode !== null || sup.child.signalCode !== null) continue;
      const timer = setTimeout(() => sup.child.kill("SIGKILL"), 10_000);
      await sup.stop("SIGTERM");
      clearTimeout(timer);
    }
    await Promise.all(targets.map((t) => t.close()));
  };
  const finish = (line: unknown, code: number): void => {
    process.stdout.write(JSON.stringify(line) + "\n", () => process.exit(code));
  };
  const timer = setTimeout(() => {
    // The helper's exit hook SIGKILLs the supervisors; their workers exit on disconnect.
    finish({ error: `scenario still running after ${deadlineMs} ms` }, 1);
  }, deadlineMs);
  main(s).then(
    async (result) => {
      await cleanup();
      clearTimeout(timer);
      finish(result, 0);
    },
    async (err: unknown) => {
      await cleanup().catch(() => undefined);
      clearTimeout(timer);
      finish({ error: err instanceof Error ? err.stack ?? err.message : String(err) }, 1);
    },
  );
}

/** "addr:port" of every listening TCP socket in this namespace, per `ss -ltnH`. */
export function listeningSockets(): string[] {
  const out = execFileSync("ss", ["-ltnH"], { encoding: "utf8" });
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[3])
    .filter((x): x is string => x !== undefined && x !== "")
    .sort();
}

export const portOf = (local: string): number => Number(local.slice(local.lastIndexOf(":") + 1));

/** The listening sockets except those on the given ports (admin, targets). */
export function listeningExcept(ports: number[]): string[] {
  return listeningSockets().filter((l) => !ports.includes(portOf(l)));
}

/** Ports from..to inclusive. */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** What a tagging target answered first, or "error:CODE". */
export async function tagOf(port: number, host = "127.0.0.1"): Promise<string> {
  try {
    return (await exchange(port, "x", host, 5000)).toString().split("\n")[0]!;
  } catch (e) {
    return `error:${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}

/** tagOf for many (port, host) pairs, `concurrency` at a time, in order. */
export async function tagsOf(dials: { port: number; host: string }[], concurrency = 16): Promise<string[]> {
  const out: string[] = new Array<string>(dials.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < dials.length) {
        const i = next++;
        out[i] = await tagOf(dials[i]!.port, dials[i]!.host);
      }
    }),
  );
  return out;
}

export interface TaggedLoad {
  ok: number;
  failed: number;
  /** Answered, but not with "<tag>\n" + the payload, or by a tag `accept` refused. */
  wrong: number;
  errors: Record<string, number>;
  /** The first few wrong answers: port, host and what came back first. */
  wrongSamples: string[];
  /** Tags seen per port. */
  tags: Record<number, string[]>;
}

/**
 * Like clientLoops (net.ts), against tagging targets: `loops` concurrent clients,
 * each connects, sends a random payload, expects "<tag>\n" + the payload back,
 * and asks `accept(port, tag, startedAt)` whether that tag may serve that port.
 * Hosts alternate between those given. Ends when `until()` or after `maxMs`.
 */
export async function taggedLoops(
  ports: number[],
  loops: number,
  until: () => boolean,
  accept: (port: number, tag: string, startedAt: number) => boolean,
  opts: { maxMs?: number; hosts?: string[] } = {},
): Promise<TaggedLoad> {
  const hosts = opts.hosts ?? ["127.0.0.1"];
  const r: TaggedLoad = { ok: 0, failed: 0, wrong: 0, errors: {}, wrongSamples: [], tags: {} };
  const deadline = Date.now() + (opts.maxMs ?? 30_000);
  let i = 0;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (!until() && Date.now() < deadline) {
        const n = i++;
        const port = ports[n % ports.length]!;
        const host = hosts[n % hosts.length]!;
        const payload = crypto.randomBytes(64 + Math.floor(Math.random() * 2048));
        const startedAt = Date.now();
        try {
          const reply = await exchange(port, payload, host, 10_000);
          const nl = reply.indexOf(10);
          const tag = nl < 0 ? reply.toString() : reply.subarray(0, nl).toString();
          const seen = (r.tags[port] ??= []);
          if (!seen.includes(tag)) seen.push(tag);
          if (nl >= 0 && reply.subarray(nl + 1).equals(payload) && accept(port, tag, startedAt)) r.ok++;
          else {
            r.wrong++;
            if (r.wrongSamples.length < 5) r.wrongSamples.push(`${host}:${port} → ${JSON.stringify(tag.slice(0, 40))}`);
          }
        } catch (e) {
          r.failed++;
          const code = `${host}:${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
          r.errors[code] = (r.errors[code] ?? 0) + 1;
        }
      }
    }),
  );
  return r;
}

/** Resolves when every pid has exited (bounded polling: there is no event for a non-child). */
export const allExited = (pids: number[], ms = 15_000): Promise<void> =>
  until(() => pids.every((p) => !isAlive(p)), ms, `pids ${pids.join(",")} to exit`, 20);

/** Worker pids of every generation, per /status. */
export async function workerPids(sup: RunningSupervisor): Promise<number[]> {
  const st = JSON.parse((await sup.admin("/status")).body) as { generations: { workers: { pid: number | null }[] }[] };
  return st.generations.flatMap((g) => g.workers.flatMap((w) => (w.pid === null ? [] : [w.pid])));
}

export interface SteeringStatusJson {
  mode: string;
  bpfOffReason?: string;
  sockets: number;
  apps: { name: string; ports: number; steered?: number }[];
}

export async function steeringStatus(sup: RunningSupervisor): Promise<SteeringStatusJson> {
  return (JSON.parse((await sup.admin("/status")).body) as { steering: SteeringStatusJson }).steering;
}

/** switchyard_steered_connections_total per app, from /metrics. */
export async function steeredMetric(sup: RunningSupervisor): Promise<Record<string, number>> {
  const text = (await sup.admin("/metrics")).body;
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^switchyard_steered_connections_total\{app="([^"]*)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Index of the next log line: pass to waitFor to see only what comes after now. */
export const mark = (sup: RunningSupervisor): number => sup.logs.length;

/**
 * Whether a pid is gone or a zombie. Workers orphaned by a SIGKILLed supervisor
 * are re-parented to pid 1, which here may never reap them: a zombie has
 * released its fds, so for what it holds it has exited.
 */
export function hasExited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}

/** Like allExited, but a zombie counts as exited (see hasExited). */
export const allGone = (pids: number[], ms = 15_000): Promise<void> =>
  until(() => pids.every(hasExited), ms, `pids ${pids.join(",")} to exit`, 20);

/** Counts events (answers of a load) and lets a scenario await the next `n` of them. */
export class Progress {
  count = 0;
  private waiters: { at: number; resolve: () => void }[] = [];

  tick(): void {
    this.count++;
    const due = this.waiters.filter((w) => this.count >= w.at);
    this.waiters = this.waiters.filter((w) => this.count < w.at);
    for (const w of due) w.resolve();
  }

  /** Resolves after `n` more ticks; rejects after `ms` (the load stalled). */
  more(n: number, ms = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load stalled: ${this.count} answers, waited for ${n} more`)), ms);
      this.waiters.push({ at: this.count + n, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

/**
 * taggedLoops (16 loops, IPv4 and IPv6 alternately) around `action`: the load
 * runs until `before` answers came, then `action` runs, then `after` more
 * answers; the loops stop by themselves whatever happens.
 */
export async function underLoad<T>(
  ports: number[],
  accept: (port: number, tag: string, startedAt: number) => boolean,
  action: () => Promise<T>,
  opts: { before?: number; after?: number; loops?: number } = {},
): Promise<{ load: TaggedLoad; value: T }> {
  let stop = false;
  const progress = new Progress();
  const running = taggedLoops(ports, opts.loops ?? 16, () => stop, (port, tag, startedAt) => {
    progress.tick();
    return accept(port, tag, startedAt);
  }, { hosts: ["127.0.0.1", "::1"], maxMs: 30_000 });
  let value: T;
  try {
    await progress.more(opts.before ?? 200);
    value = await action();
    await progress.more(opts.after ?? 300);
  } finally {
    stop = true;
    await running;
  }
  return { load: await running, value };
}

/** n distinct ports drawn at random from from..to, plus both ends. */
export function samplePorts(from: number, to: number, n: number): number[] {
  const out = new Set([from, to]);
  while (out.size < Math.min(n + 2, to - from + 1)) out.add(from + Math.floor(Math.random() * (to - from + 1)));
  return [...out];
}
