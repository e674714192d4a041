// Messages between the supervisor that hands over (the predecessor) and the
// one it started to take over (the successor), JSON lines on their channel.
import type { TargetState } from "../../common/messages.js";
import type { HandoverState } from "./handover-state.js";

/** Successor's fds: its channel to the predecessor and the socket the fds come on. */
export const UPGRADE_CHANNEL_FD = 3;
export const UPGRADE_HANDOFF_FD = 4;
/** Set in the successor's environment: it is an upgrade, its fds 3 and 4 are the above. */
export const UPGRADE_ENV = "SWITCHYARD_UPGRADE";

/** Counters (and histograms) as prom-client's JSON: what the predecessor has counted so far. */
export type CounterSnapshot = unknown[];

export type ToSuccessor =
  /** Sent once, after every fd: what they are for, and what has been counted and checked. */
  | { type: "handover"; state: HandoverState; metrics: CounterSnapshot; targetStates: TargetState[]; predecessorPid: number }
  /** systemd has been told MAINPID= the successor: it is the service now. */
  | { type: "main" }
  /** While (and once) the predecessor's workers drain: its totals so far, replacing the last ones sent. */
  | { type: "totals"; metrics: CounterSnapshot };

export type ToPredecessor =
  /** The successor runs (its first words): its pid, for a stop should it fail. */
  | { type: "started"; pid: number }
  /** The successor's first generation serves on the handed-over sockets. */
  | { type: "serving"; pid: number; generation: number }
  | { type: "failed"; code: string; message: string };

export function isToSuccessor(v: unknown): v is ToSuccessor {
  const m = v as { type?: unknown; state?: unknown; metrics?: unknown; targetStates?: unknown };
  if (typeof v !== "object" || v === null) return false;
  if (m.type === "handover") return typeof m.state === "object" && Array.isArray(m.metrics) && Array.isArray(m.targetStates);
  if (m.type === "main") return true;
  if (m.type === "totals") return Array.isArray(m.metrics);
  return false;
}

export function isToPredecessor(v: unknown): v is ToPredecessor {
  const m = v as { type?: unknown; pid?: unknown; generation?: unknown; code?: unknown; message?: unknown };
  if (typeof v !== "object" || v === null) return false;
  if (m.type === "started") return Number.isInteger(m.pid);
  if (m.type === "serving") return Number.isInteger(m.pid) && Number.isInteger(m.generation);
  if (m.type === "failed") return typeof m.code === "string" && typeof m.message === "string";
  return false;
}
