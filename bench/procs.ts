// Every process the benchmark starts goes through here, so every one of them
// (and whatever it forked) is killed by pid when the run ends, however it ends.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { isAlive, othersInMyNetns, processTree } from "./procfs.js";

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything written to stdout and stderr so far (capped). */
  output(): string;
  /** Calls `fn` for every line of stdout or stderr, including those already seen. */
  onLine(fn: (line: string) => void): void;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Raise the soft RLIMIT_NOFILE to the hard limit first. */
  maxFiles?: boolean;
}

const live = new Set<Proc>();
const OUTPUT_CAP = 256 * 1024;

export function start(name: string, cmd: string, args: string[], opts: StartOptions = {}): Proc {
  const [file, argv] = opts.maxFiles ? ["bash", ["-c", 'ulimit -Sn "$(ulimit -Hn)" && exec "$@"', "bash", cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv as string[], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env }, cwd: opts.cwd });
  let out = "";
  const lines: string[] = [];
  const listeners: ((l: string) => void)[] = [];
  const keep = (c: string) => {
    out = (out + c).slice(-OUTPUT_CAP);
  };
  // Both streams feed the line listeners: HAProxy and nginx log on stderr.
  const follow = (stream: NodeJS.ReadableStream) => {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (c: string) => {
      keep(c);
      const parts = (partial + c).split("\n");
      partial = parts.pop()!;
      for (const l of parts) {
        if (lines.length < 100_000) lines.push(l);
        for (const fn of listeners) fn(l);
      }
    });
  };
  follow(child.stdout!);
  follow(child.stderr!);
  const exited = once(child, "exit").then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const proc: Proc = {
    name,
    pid: child.pid ?? -1,
    child,
    exited,
    output: () => out,
    onLine: (fn) => {
      for (const l of lines) fn(l);
      listeners.push(fn);
    },
  };
  child.on("error", (err) => keep(`spawn error: ${err.message}\n`));
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return proc;
}

function killTree(pids: number[], signal: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, signal);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM (or `signal`), then SIGKILL for the process and its descendants after `graceMs`. */
export async function stop(proc: Proc, graceMs = 5000, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  const tree = processTree(proc.pid);
  if (proc.child.exitCode === null && proc.child.signalCode === null) killTree([proc.pid], signal);
  const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), graceMs).unref());
  if ((await Promise.race([proc.exited, timer])) === "timeout") killTree(processTree(proc.pid), "SIGKILL");
  await proc.exited;
  // Children that outlived their parent (a worker whose supervisor was killed).
  const orphans = tree.filter((p) => p !== proc.pid && isAlive(p));
  if (orphans.length) {
    killTree(orphans, "SIGTERM");
    const deadline = Date.now() + graceMs;
    while (orphans.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    killTree(orphans.filter(isAlive), "SIGKILL");
  }
}

/** Last resort on exit or signal: SIGKILL everything still running, by pid. */
export function killAll(): void {
  for (const p of live) killTree(processTree(p.pid).reverse(), "SIGKILL");
  killTree(othersInMyNetns(), "SIGKILL");
}

/** At the end of a run: whatever is left in the benchmark's namespace gets SIGTERM, then SIGKILL. */
export async function sweepNetns(graceMs = 3000): Promise<number[]> {
  const left = othersInMyNetns();
  killTree(left, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (left.some(isAlive) && Date.now() < deadline) await sleep(50);
  killTree(left.filter(isAlive), "SIGKILL");
  return left;
}

/** Runs a command to completion within `timeoutMs`, then kills it. */
export async function run(name: string, cmd: string, args: string[], timeoutMs: number, opts: StartOptions = {}): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  const p = start(name, cmd, args, opts);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killTree(processTree(p.pid), "SIGKILL");
  }, timeoutMs);
  const { code } = await p.exited;
  clearTimeout(timer);
  return { code, output: p.output(), timedOut };
}

/** Resolves with the first stdout line `match` accepts, or rejects at the deadline or exit. */
export function waitForLine(p: Proc, match: (line: string) => boolean, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => finish(new Error(`${p.name}: no matching line within ${timeoutMs} ms; output:\n${p.output().slice(-2000)}`)), timeoutMs);
    const finish = (r: string | Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (typeof r === "string") resolve(r);
      else reject(r);
    };
    p.onLine((l) => {
      if (match(l)) finish(l);
    });
    void p.exited.then(({ code, signal }) => finish(new Error(`${p.name} exited (${code ?? signal}) before the line; output:\n${p.output().slice(-2000)}`)));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
