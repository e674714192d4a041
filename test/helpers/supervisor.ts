// Starts a real supervisor (bin/switchyard.js run) for a test, follows its JSON
// log lines, and cleans up every process it started.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import module from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";

export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
export const cli = path.join(repoRoot, "bin/switchyard.js");

/**
 * What a runtime dir holds besides its locks while a supervisor runs: the
 * control socket, and on Node lines with a compile cache (22.1 and later) the
 * workers' cache, which the supervisor points them at (NODE_COMPILE_CACHE).
 */
export const RUNTIME_DIR_FILES: readonly string[] = [
  ...("enableCompileCache" in module ? ["compile-cache"] : []),
  "control.sock",
];

export type LogLine = Record<string, unknown> & { event?: string; pid?: number; role?: string };

export interface SupervisorOptions {
  /** The program to run (bin/switchyard.js of another install); default: this checkout's. */
  cli?: string;
  /** Written to a fresh config.json; ignored when `configPath` is given. */
  config?: unknown;
  /** Run on this existing file (e.g. a symlink the test laid out) instead of writing `config`. */
  configPath?: string;
  /** Default: a fresh directory of the test's own. */
  runtimeDir?: string;
  workers?: number;
  drainTimeout?: number;
  steering?: "auto" | "bpf" | "ports";
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Wrap the command, e.g. ["unshare", "-n", ...]; default none. */
  wrap?: string[];
  /** Called with every log line as it arrives, before startSupervisor resolves too. */
  onLine?: (line: LogLine, ctx: { configPath: string; pid: number }) => void;
}

export interface RunningSupervisor {
  child: ChildProcess;
  pid: number;
  dir: string;
  configPath: string;
  runtimeDir: string;
  adminPort: number;
  logs: LogLine[];
  stderr(): string;
  /** Resolves with the first log line (past or future) matching. */
  waitFor(match: (l: LogLine) => boolean, timeoutMs?: number, from?: number): Promise<LogLine>;
  writeConfig(config: unknown): void;
  admin(pathname: string): Promise<{ status: number; body: string }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function tempDir(prefix = "switchyard-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * An empty file for SWITCHYARD_FAULT_FILE (worker/fault-injection.ts), which
 * every starting worker reads: readable by the workers' user too, since a
 * recycled worker starts its next generation as nobody.
 */
export function makeFaultFile(prefix = "switchyard-fault-"): string {
  const dir = tempDir(prefix);
  fs.chmodSync(dir, 0o755);
  const file = path.join(dir, "fault");
  fs.writeFileSync(file, "", { mode: 0o644 });
  return file;
}

export function writeJson(file: string, value: unknown): void {
  // Write then rename, so a watcher never reads half a file.
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  fs.renameSync(tmp, file);
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

export async function startSupervisor(opts: SupervisorOptions): Promise<RunningSupervisor> {
  const dir = tempDir();
  const configPath = opts.configPath ?? path.join(dir, "config.json");
  const runtimeDir = opts.runtimeDir ?? path.join(dir, "run");
  if (opts.configPath === undefined) writeJson(configPath, opts.config);
  const args = [
    opts.cli ?? cli, "run", "--config", configPath, "--admin", "127.0.0.1:0", "--runtime-dir", runtimeDir,
    "--workers", String(opts.workers ?? 2), "--drain-timeout", String(opts.drainTimeout ?? 5),
    "--steering", opts.steering ?? "ports", ...(opts.args ?? []),
  ];
  const [cmd, ...cmdArgs] = [...(opts.wrap ?? []), process.execPath, ...args];
  const child = spawn(cmd!, cmdArgs, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  running.add(child);
  const exited = once(child, "exit").then(([code, signal]) => {
    running.delete(child);
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });
  const logs: LogLine[] = [];
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void; from: number }[] = [];
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  let partial = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop()!;
    for (const text of lines) {
      if (!text) continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      logs.push(line);
      opts.onLine?.(line, { configPath, pid: child.pid! });
      for (const w of [...waiters]) {
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const waitFor = (match: (l: LogLine) => boolean, timeoutMs = 20_000, from = 0): Promise<LogLine> => {
    const seen = logs.slice(from).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line; last lines:\n${logs.slice(-8).map((l) => JSON.stringify(l)).join("\n")}\nstderr: ${stderr}`)), timeoutMs);
      const w = { match, from, resolve: (l: LogLine) => (clearTimeout(timer), resolve(l)) };
      waiters.push(w);
      void exited.then(() => {
        if (waiters.includes(w)) {
          clearTimeout(timer);
          reject(new Error(`supervisor exited before the log line; stderr: ${stderr}`));
        }
      });
    });
  };
  const ready = await waitFor((l) => l.event === "supervisor_ready");
  const adminPort = ready.admin_port as number;
  const handle: RunningSupervisor = {
    child,
    pid: child.pid!,
    dir,
    configPath,
    runtimeDir,
    adminPort,
    logs,
    stderr: () => stderr,
    waitFor,
    writeConfig: (c) => writeJson(configPath, c),
    admin: async (pathname) => {
      try {
        const res = await fetch(`http://127.0.0.1:${adminPort}${pathname}`);
        return { status: res.status, body: await res.text() };
      } catch (err) {
        // fetch says only "fetch failed": say why, and whether the supervisor is still there.
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const state = child.exitCode !== null || child.signalCode !== null ? `exited (code ${child.exitCode}, signal ${child.signalCode})` : "running";
        const last = logs.slice(-5).map((l) => l.event).join(", ");
        throw new Error(`GET ${pathname} on the admin port failed: ${cause?.code ?? ""} ${cause?.message ?? (err as Error).message}; supervisor ${state}; last events: ${last}; stderr: ${stderr.slice(-500)}`, { cause: err });
      }
    },
    exited,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  return handle;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output. */
export async function runCommand(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  // "close", not "exit": a process can exit before its last output has been read from the pipes.
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  return runCommand(process.execPath, [cli, ...args], env);
}
