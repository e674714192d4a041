// Small helpers shared by the core-*.test.ts files: /status without keep-alive,
// worker pids, resident memory, a free privileged port.
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import type { RunningSupervisor } from "./supervisor.js";

/**
 * GET on the admin port with `Connection: close` and no agent, so the test
 * leaves no pooled socket open in the supervisor (fd counts stay comparable).
 */
export function adminGet(port: number, pathname: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: pathname, agent: false, headers: { connection: "close" }, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${pathname} timed out`)));
    req.on("error", reject);
  });
}

export interface StatusWorker {
  index: number;
  pid: number | null;
  state: string;
}

/** Pids of the workers of the serving generation, from GET /status. */
export async function servingWorkers(sup: RunningSupervisor): Promise<StatusWorker[]> {
  const { status, body } = await adminGet(sup.adminPort, "/status");
  if (status !== 200) throw new Error(`/status answered ${status}: ${body}`);
  const s = JSON.parse(body) as { generation: number | null; generations: { number: number; workers: StatusWorker[] }[] };
  const current = s.generations.find((g) => g.number === s.generation);
  return current?.workers ?? [];
}

/** VmRSS of a process in bytes, or undefined once it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    // Only "in use" counts as taken: a host without IPv6 cannot clash on "::".
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code !== "EADDRINUSE" && err.code !== "EACCES"));
    s.listen({ port, host, ipv6Only: host === "::" }, () => s.close(() => resolve(true)));
  });
}

/**
 * A port below 1024 that is free on the IPv4 and IPv6 wildcards: only root
 * can bind it, so an unprivileged worker holding it must have been handed it.
 */
export async function freePrivilegedPort(): Promise<number> {
  const start = 600 + Math.floor(Math.random() * 300);
  for (let i = 0; i < 300; i++) {
    const port = 600 + ((start - 600 + i) % 400);
    if ((await bindable(port, "0.0.0.0")) && (await bindable(port, "::"))) return port;
  }
  throw new Error("no free port in 600-999");
}

/** Polls `check` every `everyMs` until it is true or `timeoutMs` passes; returns its last value. */
export async function pollUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** pollUntil that throws, naming `what`, when `check` is still false at the deadline. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 50): Promise<void> {
  if (!(await pollUntil(check, timeoutMs, everyMs))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** `promise`, or a rejection after `timeoutMs`; the timer never outlives the race. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A worker process started ahead (--spare-workers), as GET /status lists it. */
export interface StatusSpare {
  pid: number;
  /** It said "loaded": its modules and signal handlers are in, and only then may it be adopted. */
  ready: boolean;
  launchedAt: string;
  /** Generations it served before (a recycled worker); 0 for one started as a spare. */
  recycled: number;
}

export interface Supervised {
  /** Every worker process of every generation (/status `workers`), sorted. */
  workers: number[];
  /** The spares (/status `spares`), in the supervisor's order. */
  spares: StatusSpare[];
  /** Workers and spares, sorted: what the supervisor's children must be, exactly. */
  all: number[];
}

/** The supervisor's worker processes and its spares, from one GET /status (no keep-alive). */
export async function supervised(sup: RunningSupervisor): Promise<Supervised> {
  const { status, body } = await adminGet(sup.adminPort, "/status");
  if (status !== 200) throw new Error(`/status answered ${status}: ${body}`);
  const s = JSON.parse(body) as { workers: { pid: number | null }[]; spares: StatusSpare[] };
  const workers = s.workers.flatMap((w) => (w.pid === null ? [] : [w.pid])).sort((a, b) => a - b);
  return { workers, spares: s.spares, all: [...workers, ...s.spares.map((x) => x.pid)].sort((a, b) => a - b) };
}

/** Polls /status until there are `count` spares, every one loaded; returns them. */
export async function sparesReady(sup: RunningSupervisor, count: number, timeoutMs = 20_000): Promise<StatusSpare[]> {
  let last: Supervised | undefined;
  const ok = await pollUntil(async () => {
    last = await supervised(sup);
    return last.spares.length === count && last.spares.every((x) => x.ready);
  }, timeoutMs);
  if (!ok) throw new Error(`timed out after ${timeoutMs} ms waiting for ${count} loaded spares: ${JSON.stringify(last?.spares)}`);
  return last!.spares;
}
