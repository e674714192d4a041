// What a supervisor's fds are for, beyond their names: sent inline in an
// upgrade, kept in a memfd in systemd's fd store against a crash.
import fs from "node:fs";
import { memfdCreate } from "../../native/index.js";
import type { SteeringMode } from "../listeners/listener-provider.js";

export interface HandoverState {
  version: 1;
  mode: SteeringMode;
  /** BPF mode: which app's socket each sockmap slot (fd "app-<slot>") holds. */
  apps: { name: string; slot: number }[];
  /** The last generation started: the next supervisor goes on from it. */
  generation: number;
  /** Upgrade only: the MaxConnections table (fd "counters") and who counts where in it. */
  counters?: { slots: { name: string; slot: number }[]; rows: number[] };
}

/** The state, or why `value` is not one (a state written by another version, a damaged memfd). */
export function parseHandoverState(value: unknown): HandoverState | string {
  if (typeof value !== "object" || value === null) return "not an object";
  const v = value as Record<string, unknown>;
  if (v.version !== 1) return `version ${JSON.stringify(v.version)}, expected 1`;
  if (v.mode !== "ports" && v.mode !== "bpf") return `mode ${JSON.stringify(v.mode)}`;
  if (!Number.isInteger(v.generation) || (v.generation as number) < 0) return "generation is not a whole number";
  if (!Array.isArray(v.apps)) return "apps is not an array";
  for (const a of v.apps as unknown[]) {
    const app = a as Record<string, unknown>;
    if (typeof app !== "object" || app === null || typeof app.name !== "string" || !Number.isInteger(app.slot)) return "an app without a string name and a whole-number slot";
  }
  const state: HandoverState = { version: 1, mode: v.mode, generation: v.generation as number, apps: (v.apps as { name: string; slot: number }[]).map((a) => ({ name: a.name, slot: a.slot })) };
  const c = v.counters as { slots?: unknown; rows?: unknown } | undefined;
  if (c !== undefined) {
    const slots = Array.isArray(c.slots) ? (c.slots as { name?: unknown; slot?: unknown }[]).filter((x) => typeof x?.name === "string" && Number.isInteger(x.slot)) : [];
    const rows = Array.isArray(c.rows) ? (c.rows as unknown[]).filter((r): r is number => Number.isInteger(r)) : [];
    state.counters = { slots: slots as { name: string; slot: number }[], rows };
  }
  return state;
}

/** A memfd holding the state as JSON, close-on-exec, owned by the caller. */
export function stateMemfd(state: HandoverState): number {
  const fd = memfdCreate("switchyard-state");
  const text = Buffer.from(JSON.stringify(state));
  let written = 0;
  try {
    while (written < text.length) written += fs.writeSync(fd, text, written);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  return fd;
}

/** Reads a state memfd from its start (a fresh open of it: the fd's own offset is left alone). */
export function readStateMemfd(fd: number): HandoverState | string {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/self/fd/${fd}`, "utf8");
  } catch (err) {
    return `cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  try {
    return parseHandoverState(JSON.parse(text));
  } catch {
    return "not JSON";
  }
}
