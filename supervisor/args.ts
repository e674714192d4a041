import os from "node:os";
import { parseArgs } from "node:util";
import { SwitchyardError } from "../common/errors.js";
import type { DataPath } from "../common/messages.js";

export type SteeringChoice = "auto" | "bpf" | "ports";

export interface RunOptions {
  config: string;
  workers: number;
  /** Worker processes kept started ahead, for reloads and replacements to take (--spare-workers; default: --workers). */
  spareWorkers: number;
  /**
   * Generations one worker process serves at most (--worker-generations): one
   * whose generation drained with nothing cut comes back as a spare until then;
   * 1: every worker exits after its drain.
   */
  workerGenerations: number;
  admin: { host: string; port: number };
  steering: SteeringChoice;
  runtimeDir: string;
  drainTimeoutMs: number;
  startTimeoutMs: number;
  maxDraining: number;
  /** Unprivileged user the workers run as when started by root; "" keeps root. */
  user: string;
  /** "-" for stdout, "off", or a file path (reopened on SIGUSR1). */
  accessLog: string;
  /** Open connections one worker carries at most; beyond, a new one is closed at once. null: no limit. */
  maxConnections: number | null;
  /** Event-loop delay (p99, ms) past which a worker stops accepting for a while; null: never. */
  overloadLagMs: number | null;
  /** --data-path: who carries established connections' bytes in the workers. */
  dataPath: DataPath;
  /** Keep sockets and BPF state in systemd's fd store (--fd-store, or $FDSTORE > 0 from systemd 254 on). */
  fdStore: boolean;
}

/**
 * A worker process is reused for this many generations at most, then ends like
 * any drained worker: what a long-lived process accumulates (heap, fragmentation,
 * whatever a bug leaks) is bounded, at one process start per this many reloads.
 */
const DEFAULT_WORKER_GENERATIONS = 100;

export function defaultRuntimeDir(): string {
  return process.env.RUNTIME_DIRECTORY?.split(":")[0] || "/run/switchyard";
}

function usage(message: string): never {
  throw new SwitchyardError("USAGE", message);
}

function positiveNumber(name: string, text: string, integer: boolean): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) usage(`--${name}: must be a positive ${integer ? "integer" : "number"}, got "${text}"`);
  return n;
}

/** A whole number, 0 included. */
function count(name: string, text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < 0) usage(`--${name}: must be a whole number, 0 or more, got "${text}"`);
  return n;
}

/** Seconds, 0 included: a drain timeout of 0 closes open connections at once. */
function seconds(name: string, text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) usage(`--${name}: must be a number of seconds, 0 or more, got "${text}"`);
  return n;
}

/** --data-path native|js: default native. */
function dataPath(text: string | undefined): DataPath {
  if (text === undefined || text === "native" || text === "js") return text ?? "native";
  usage(`--data-path: expected native or js, got "${text}"`);
}

/** --overload-lag MS: default 500; 0 turns load shedding off. */
function overloadLag(text: string | undefined): number | null {
  if (text === undefined) return 500;
  const n = Number(text);
  if (text.trim() === "" || !Number.isInteger(n) || n < 0) usage(`--overload-lag: must be a whole number of milliseconds, 0 to turn shedding off, got "${text}"`);
  return n === 0 ? null : n;
}

export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const m = text.match(/^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 0 || port > 65535) usage(`${what}: expected HOST:PORT, got "${text}"`);
  return { host: (m[1] ?? m[2])!, port };
}

export function parseRunArgs(argv: string[]): RunOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      config: { type: "string", short: "c" },
      workers: { type: "string" },
      "spare-workers": { type: "string" },
      "worker-generations": { type: "string" },
      admin: { type: "string" },
      steering: { type: "string" },
      "runtime-dir": { type: "string" },
      "drain-timeout": { type: "string" },
      "start-timeout": { type: "string" },
      "max-draining": { type: "string" },
      user: { type: "string" },
      "access-log": { type: "string" },
      "max-connections": { type: "string" },
      "overload-lag": { type: "string" },
      "fd-store": { type: "boolean" },
      "data-path": { type: "string" },
    },
  });
  if (!values.config) usage("run: --config FILE is required");
  const steering = values.steering ?? "auto";
  if (steering !== "auto" && steering !== "bpf" && steering !== "ports") usage(`--steering: expected auto, bpf or ports, got "${steering}"`);
  const workers = values.workers ? positiveNumber("workers", values.workers, true) : os.availableParallelism();
  return {
    config: values.config,
    workers,
    spareWorkers: values["spare-workers"] !== undefined ? count("spare-workers", values["spare-workers"]) : workers,
    workerGenerations: values["worker-generations"] !== undefined ? positiveNumber("worker-generations", values["worker-generations"], true) : DEFAULT_WORKER_GENERATIONS,
    admin: parseHostPort(values.admin ?? "127.0.0.1:9901", "--admin"),
    steering,
    runtimeDir: values["runtime-dir"] ?? defaultRuntimeDir(),
    drainTimeoutMs: Math.round(1000 * (values["drain-timeout"] !== undefined ? seconds("drain-timeout", values["drain-timeout"]) : 30)),
    startTimeoutMs: Math.round(1000 * (values["start-timeout"] ? positiveNumber("start-timeout", values["start-timeout"], false) : 10)),
    maxDraining: values["max-draining"] ? positiveNumber("max-draining", values["max-draining"], true) : 3,
    user: values.user ?? "nobody",
    accessLog: values["access-log"] ?? "-",
    maxConnections: values["max-connections"] ? positiveNumber("max-connections", values["max-connections"], true) : null,
    overloadLagMs: overloadLag(values["overload-lag"]),
    dataPath: dataPath(values["data-path"]),
    fdStore: values["fd-store"] === true || Number(process.env.FDSTORE ?? 0) > 0,
  };
}
