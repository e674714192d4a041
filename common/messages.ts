// The one protocol between supervisor and worker. JSON messages travel over
// Node's IPC channel; the listening fds travel separately, by SCM_RIGHTS on the
// hand-over socket (the worker's fd HANDOFF_FD), in the order of `listeners`.
import type { Plan } from "../config/plan.js";

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
 * A worker's metrics as prom-client's getMetricsAsJSON() shapes them, so the
 * supervisor can sum workers with prom-client's aggregator. Histogram values
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
      healthSocket: string;
      /** Drop to this uid/gid once the health socket is bound; absent: keep. */
      credentials?: { uid: number; gid: number };
    }
  /** Cut-over: start accepting on the handed-over sockets (a started worker only answers /healthz). */
  | { type: "serve" }
  | { type: "drain"; timeoutMs: number }
  | { type: "metrics-request"; seq: number };

/** Worker → supervisor. */
export type FromWorker =
  /** Acknowledges the hand-over: the socket inode of every fd received, in order. */
  | { type: "started"; pid: number; inodes: number[] }
  | { type: "start-failed"; code: string; message: string }
  /** Acknowledges "serve": this worker accepts on every listener. */
  | { type: "serving" }
  /** Acknowledges "drain": this worker has closed its copies of the listening sockets. */
  | { type: "draining"; connections: number }
  /** Last words before exit: connections cut at the deadline, final metrics. */
  | { type: "drained"; connections: number; metrics: MetricFamily[] }
  | { type: "metrics"; seq: number; metrics: MetricFamily[] };

export type MessageOf<U extends { type: string }, T extends U["type"]> = Extract<U, { type: T }>;

/** A handler for every message type: the compiler refuses a missing one. */
export type Handlers<U extends { type: string }> = { [T in U["type"]]: (msg: MessageOf<U, T>) => void };

const toWorkerTypes: ReadonlySet<string> = new Set<ToWorker["type"]>(["start", "serve", "drain", "metrics-request"]);
const fromWorkerTypes: ReadonlySet<string> = new Set<FromWorker["type"]>(["started", "start-failed", "serving", "draining", "drained", "metrics"]);

function hasType(value: unknown, known: ReadonlySet<string>): boolean {
  return typeof value === "object" && value !== null && known.has((value as { type?: unknown }).type as string);
}

export function isToWorker(value: unknown): value is ToWorker {
  return hasType(value, toWorkerTypes);
}

export function isFromWorker(value: unknown): value is FromWorker {
  return hasType(value, fromWorkerTypes);
}

/** Calls the handler for `msg.type`; an unknown message is reported, never dropped silently. */
export function dispatch<U extends { type: string }>(handlers: Handlers<U>, msg: U): void {
  const handler = handlers[msg.type as U["type"]] as (m: U) => void;
  handler(msg);
}
