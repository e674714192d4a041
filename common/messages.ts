// The one protocol between supervisor and worker. JSON messages travel as lines
// on the channel (the worker's fd CHANNEL_FD, common/channel.ts); the listening
// fds travel separately, by SCM_RIGHTS on the hand-over socket (the worker's fd
// HANDOFF_FD), in the order of `listeners`.
import type { Plan } from "../config/plan.js";

/** Worker's fd number of the message channel (stdio index in spawn). */
export const CHANNEL_FD = 3;

/** --data-path: "native" (the addon's splice relay, native/relay.ts) or "js" (Node streams). */
export type DataPath = "native" | "js";

/** Worker's fd number of the shared connection counters' memfd (native/counters.c). */
export const COUNTERS_FD = 6;

/** Worker's fd number of the hand-over socket (stdio index in spawn). */
export const HANDOFF_FD = 4;

/** SCM_MAX_FD is 253; the hand-over sends at most this many fds per message. */
export const MAX_FDS_PER_MESSAGE = 250;

export interface ListenerSpec {
  /** Stable identity in the supervisor, e.g. "0.0.0.0:5001" or "app:echo-a". */
  key: string;
  /** Names of the apps whose connections arrive on this socket. */
  apps: string[];
}

export interface WorkerIdentity {
  generation: number;
  worker: number;
}

export interface ConnectionStats {
  app: string;
  accepted: number;
  active: number;
}

/**
 * What the supervisor's active health checks say of one target of one app
 * (supervisor/health/). Only apps with a HealthCheck have any.
 */
export interface TargetState {
  app: string;
  /** The target's label, as in the Plan. */
  target: string;
  up: boolean;
}

/**
 * A worker's metrics as prom-client's getMetricsAsJSON() shapes them; the
 * supervisor sums workers as prom-client's aggregator did
 * (supervisor/operations/prom/aggregate.ts). Histogram values
 * carry `metricName` (`_bucket` with an `le` label, `_sum`, `_count`).
 */
export interface MetricFamily {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  /** How the supervisor combines workers' values. */
  aggregator: "sum" | "min";
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/** Supervisor → worker. */
export type ToWorker =
  | {
      type: "start";
      id: WorkerIdentity;
      plan: Plan;
      listeners: ListenerSpec[];
      /** Drop to this uid/gid once the fds are in hand; absent: keep. */
      credentials?: { uid: number; gid: number };
      /** Open connections this worker carries at most (--max-connections); null: no limit. */
      maxConnections: number | null;
      /** --overload-lag: event-loop delay past which it stops accepting for a while; null: never. */
      overloadLagMs: number | null;
      /** Who carries the bytes of an established connection: the addon's splice relay, or Node streams. */
      dataPath: DataPath;
      /** Its row in the shared counters (on COUNTERS_FD) and its apps' slots, for MaxConnections; null: none. */
      counters: { row: number; slots: Record<string, number> } | null;
      /**
       * The checked targets' states as the worker starts, so a new generation
       * never dials first a target the old one knew to be down. A target absent
       * is up (until its checks say otherwise).
       */
      targetStates: TargetState[];
    }
  /**
   * The health gate's probe. It travels on this channel rather than a socket
   * of the worker's own: no path to outgrow sun_path, no file left by a crash,
   * no permissions, nothing for another process to connect to.
   */
  | { type: "health-check"; seq: number }
  /** Cut-over: start accepting on the handed-over sockets (a started worker only answers health checks). */
  | { type: "serve" }
  /**
   * Stop accepting, finish or (at the deadline) cut what is open. `recycle`: a
   * drain that ends with nothing cut leaves the process as a spare (it says
   * "drained" with `recycled`, then "loaded") rather than exiting.
   */
  | { type: "drain"; timeoutMs: number; recycle: boolean }
  | { type: "metrics-request"; seq: number }
  /** Targets whose checked state changed (transitions only; the rest stand). */
  | { type: "target-states"; states: TargetState[] };

/** Worker → supervisor. */
export type FromWorker =
  /** Its modules are loaded (or, recycled, its last generation is gone): ready to be given a plan. Unasked. */
  | { type: "loaded" }
  /** Acknowledges the hand-over: the socket inode of every fd received, in order. */
  | { type: "started"; pid: number; inodes: number[] }
  | { type: "start-failed"; code: string; message: string }
  /** Answers "health-check": serving means it holds its fds and would accept at cut-over. */
  | { type: "health"; seq: number; serving: boolean }
  /** Acknowledges "serve": this worker accepts on every listener. */
  | { type: "serving" }
  /** Acknowledges "drain": this worker has closed its copies of the listening sockets. */
  | { type: "draining"; connections: number }
  /**
   * This generation's last words: connections cut at the deadline, final
   * metrics. Then it exits, or, `recycled`, it is a spare again ("loaded" follows).
   */
  | { type: "drained"; connections: number; metrics: MetricFamily[]; recycled: boolean }
  | { type: "metrics"; seq: number; metrics: MetricFamily[] };

export type MessageOf<U extends { type: string }, T extends U["type"]> = Extract<U, { type: T }>;

/** A handler for every message type: the compiler refuses a missing one. */
export type Handlers<U extends { type: string }> = { [T in U["type"]]: (msg: MessageOf<U, T>) => void };

const toWorkerTypes: ReadonlySet<string> = new Set<ToWorker["type"]>(["start", "serve", "drain", "metrics-request", "health-check", "target-states"]);

type Fields = Record<string, unknown>;
const isRecord = (v: unknown): v is Fields => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isString = (v: unknown): v is string => typeof v === "string";

function isMetricValue(v: unknown): boolean {
  return (
    isRecord(v) &&
    typeof v.value === "number" &&
    isRecord(v.labels) &&
    Object.values(v.labels).every((l) => typeof l === "string" || typeof l === "number") &&
    (v.metricName === undefined || isString(v.metricName))
  );
}

function isMetricFamilies(v: unknown): boolean {
  return (
    Array.isArray(v) &&
    v.every(
      (f) =>
        isRecord(f) &&
        isString(f.name) &&
        isString(f.help) &&
        (f.type === "counter" || f.type === "gauge" || f.type === "histogram") &&
        (f.aggregator === "sum" || f.aggregator === "min") &&
        Array.isArray(f.values) &&
        f.values.every(isMetricValue),
    )
  );
}

/**
 * Every field of every message a worker may send, checked: the supervisor
 * reads them (inode lists, metrics it aggregates) and must never throw on
 * what a broken or compromised worker wrote.
 */
const fromWorkerShapes: { [T in FromWorker["type"]]: (m: Fields) => boolean } = {
  loaded: () => true,
  started: (m) => isCount(m.pid) && Array.isArray(m.inodes) && m.inodes.every(isCount),
  "start-failed": (m) => isString(m.code) && isString(m.message),
  health: (m) => isCount(m.seq) && typeof m.serving === "boolean",
  serving: () => true,
  draining: (m) => isCount(m.connections),
  drained: (m) => isCount(m.connections) && isMetricFamilies(m.metrics) && typeof m.recycled === "boolean" && (!m.recycled || m.connections === 0),
  metrics: (m) => isCount(m.seq) && isMetricFamilies(m.metrics),
};

export function isToWorker(value: unknown): value is ToWorker {
  return isRecord(value) && toWorkerTypes.has(value.type as string);
}

export function isFromWorker(value: unknown): value is FromWorker {
  if (!isRecord(value) || !isString(value.type) || !Object.hasOwn(fromWorkerShapes, value.type)) return false;
  return fromWorkerShapes[value.type as FromWorker["type"]](value);
}

/** Calls the handler for `msg.type`; an unknown message is reported, never dropped silently. */
export function dispatch<U extends { type: string }>(handlers: Handlers<U>, msg: U): void {
  const handler = handlers[msg.type as U["type"]] as (m: U) => void;
  handler(msg);
}
