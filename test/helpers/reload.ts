// Reload tests: configs, triggers awaited on their log lines, /status, and a
// client load whose progress can be awaited.
import crypto from "node:crypto";
import type { ExecutionContext } from "ava";
import type { LogLine, RunningSupervisor } from "./supervisor.js";
import { exchange, type LoadResult, type Target } from "./net.js";

/** One app on 127.0.0.1 `ports`, carried to `targets`. */
export function app(name: string, ports: number[], targets: Target[]): Record<string, unknown> {
  return { Name: name, Ports: ports, Addresses: ["127.0.0.1"], Targets: targets.map((t) => `127.0.0.1:${t.port}`) };
}

export function config(...apps: Record<string, unknown>[]): { Apps: Record<string, unknown>[] } {
  return { Apps: apps };
}

export interface StatusWorker {
  index: number;
  pid: number | null;
  state: string;
  connections: number | null;
}

export interface Status {
  healthy: boolean;
  generation: number | null;
  reloading: boolean;
  lastReload: null | { ok: boolean; code?: string; message?: string; generation?: number; source: string };
  generations: { number: number; state: string; workers: StatusWorker[] }[];
  /** Worker processes started ahead (--spare-workers), not yet any generation's. */
  spares: { pid: number; ready: boolean; launchedAt: string; recycled: number }[];
  apps: { name: string; ports: number[]; targets: { target: string; up: boolean }[] }[];
}

export async function status(sup: RunningSupervisor): Promise<Status> {
  const res = await sup.admin("/status");
  if (res.status !== 200) throw new Error(`/status answered ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as Status;
}

/** Pids of the current (serving) generation's workers. */
export function currentPids(s: Status): number[] {
  const g = s.generations.find((x) => x.number === s.generation);
  return (g?.workers ?? []).map((w) => w.pid!).sort((a, b) => a - b);
}

/**
 * A worker's end in its generation, as the supervisor logs it: it exited, or,
 * drained with nothing cut, it came back as a spare (recycled).
 */
export const isWorkerDone = (l: LogLine): boolean => l.event === "worker_exited" || l.event === "worker_recycled";

export const isEnd = (l: LogLine): boolean => l.event === "reload_succeeded" || l.event === "reload_failed";

export interface ReloadOutcome {
  started: LogLine;
  ended: LogLine;
  /**
   * Index in sup.logs of the start line. Lines the reload causes (an idle old
   * worker exiting, its generation stopping) can precede the end line: look
   * for them from here, not from `next`.
   */
  begun: number;
  /** Index in sup.logs just past the end line. */
  next: number;
}

/**
 * Fires `trigger` and waits for the reload it causes: the first reload_started
 * logged after it (whose source matches, when given), then that reload's end.
 * Reloads are serialised, so the end line after a start line belongs to it.
 */
export async function reloadVia(sup: RunningSupervisor, trigger: () => void, source?: string | ((source: string) => boolean), timeoutMs = 15_000): Promise<ReloadOutcome> {
  const from = sup.logs.length;
  const sourceOk = (s: unknown): boolean => source === undefined || (typeof source === "string" ? s === source : source(String(s)));
  trigger();
  const started = await sup.waitFor((l) => l.event === "reload_started" && sourceOk(l.source), timeoutMs, from);
  const begun = sup.logs.indexOf(started);
  const ended = await sup.waitFor(isEnd, timeoutMs, begun + 1);
  return { started, ended, begun, next: sup.logs.indexOf(ended) + 1 };
}

export const sighup = (sup: RunningSupervisor) => (): void => void process.kill(sup.pid, "SIGHUP");

/** Whether a reload line's `source` (coalesced triggers, comma-separated) includes `s`. */
export const hasSource = (l: LogLine, s: string): boolean => String(l.source).split(",").includes(s);

/**
 * Fires `trigger` (a change to the config file), waits for the file reload it
 * causes, then proves it caused no second one: the next reload, a SIGHUP's,
 * must be the SIGHUP's alone. Returns the log index the trigger came after.
 */
export async function expectOneFileReload(t: ExecutionContext, sup: RunningSupervisor, trigger: () => void, what: string): Promise<number> {
  const from = sup.logs.length;
  const r = await reloadVia(sup, trigger, "file");
  t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
  const h = await reloadVia(sup, sighup(sup));
  t.is(h.started.source, "sighup", "a second file-sourced reload came in");
  t.is(h.ended.event, "reload_succeeded");
  t.is(linesSince(sup, from, (l) => l.event === "reload_started" && hasSource(l, "file")).length, 1, `${what} gave more than one reload`);
  return from;
}

/** Log lines since index `from` matching. */
export function linesSince(sup: RunningSupervisor, from: number, match: (l: LogLine) => boolean): LogLine[] {
  return sup.logs.slice(from).filter(match);
}

export interface Load {
  readonly result: LoadResult;
  /** Resolves once `n` more exchanges have succeeded (rejects past `timeoutMs`). */
  progress(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<LoadResult>;
}

/**
 * Like net.ts clientLoops (connect, random payload, full echo compared, close),
 * but running in the background with live counters, so a test can pace its
 * triggers on traffic actually carried. Bounded by `maxMs`.
 */
export function startLoad(ports: number[], loops: number, maxMs: number, host = "127.0.0.1"): Load {
  const result: LoadResult = { ok: 0, failed: 0, wrongBytes: 0, errors: {} };
  const deadline = Date.now() + maxMs;
  let stopped = false;
  let i = 0;
  let waiters: { at: number; resolve(): void }[] = [];
  const done = Promise.all(
    Array.from({ length: loops }, async () => {
      while (!stopped && Date.now() < deadline) {
        const port = ports[i++ % ports.length]!;
        const payload = crypto.randomBytes(64 + Math.floor(Math.random() * 4096));
        try {
          const reply = await exchange(port, payload, host);
          if (reply.equals(payload)) result.ok++;
          else result.wrongBytes++;
        } catch (e) {
          result.failed++;
          const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
          result.errors[code] = (result.errors[code] ?? 0) + 1;
        }
        if (waiters.length > 0) {
          const due = waiters.filter((w) => result.ok >= w.at);
          waiters = waiters.filter((w) => result.ok < w.at);
          for (const w of due) w.resolve();
        }
      }
    }),
  ).then(() => result);
  return {
    result,
    progress: (n, timeoutMs = 20_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`load made no progress: ${JSON.stringify(result)}`)), timeoutMs);
        waiters.push({ at: result.ok + n, resolve: () => (clearTimeout(timer), resolve()) });
      }),
    stop: () => {
      stopped = true;
      return done;
    },
  };
}

/**
 * Six config changes under 16 client loops, each proven to give exactly one
 * file reload: `change(i)` must make the file name target a for even i, b for
 * odd. Then nothing failed, both targets carried traffic, and a serves.
 * `afterEach` gets the log index each change came after.
 */
export async function sixFileReloadsUnderLoad(
  t: ExecutionContext,
  sup: RunningSupervisor,
  ports: number[],
  [a, b]: [Target, Target],
  change: (i: number) => void,
  what: string,
  afterEach?: (from: number) => void,
): Promise<void> {
  const load = startLoad(ports, 16, 30_000);
  try {
    await load.progress(200);
    for (let i = 1; i <= 6; i++) {
      const from = await expectOneFileReload(t, sup, () => change(i), `${what} ${i}`);
      afterEach?.(from);
      await load.progress(1000);
    }
  } finally {
    await load.stop();
  }
  const result = load.result;
  t.log(`exchanges: ${JSON.stringify(result)}`);
  t.is(result.failed, 0, JSON.stringify(result.errors));
  t.is(result.wrongBytes, 0);
  t.true(a.connections > 0 && b.connections > 0);
  // The sixth change named target a again.
  t.deepEqual((await status(sup)).apps[0]!.targets.map((x) => x.target), [`127.0.0.1:${a.port}`]);
}
