import type { Plan } from "../../config/plan.js";
import type { ListenerSpec } from "../../common/messages.js";

export type SteeringMode = "ports" | "bpf";

export interface HandedListener {
  spec: ListenerSpec;
  fd: number;
}

/** The sockets one generation receives, and how to make them live or abandon them. */
export interface PreparedListeners {
  listeners: HandedListener[];
  /** Cut-over: steer to the new plan, close the sockets it no longer uses. */
  commit(): void;
  /** Abandon the reload: close what prepare() opened. */
  rollback(): void;
}

export interface SteeringStatus {
  mode: SteeringMode;
  /** Why BPF is off, when it is. */
  bpfOffReason?: string;
  sockets: number;
  apps: { name: string; ports: number; steered?: number }[];
}

/**
 * Owns every listening socket. Only the supervisor creates or closes one;
 * workers get copies and close only those.
 */
export interface ListenerProvider {
  readonly mode: SteeringMode;
  /** Opens what `plan` needs and the live plan lacks. Throws LISTEN_FAILED, having closed what it opened. */
  prepare(plan: Plan): PreparedListeners;
  status(): SteeringStatus;
  /** Connections steered per app since start, where the mode counts them (BPF). */
  steeredCounts(): Map<string, number> | undefined;
  closeAll(): void;
}
