import type { Plan } from "../../config/plan.js";
import type { ListenerSpec } from "../../common/messages.js";
import type { NamedFd } from "../handover/named-fds.js";

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
  /** Stops steering (BPF: detaches) and closes every socket. */
  closeAll(): void;
  /**
   * What the next supervisor (an upgrade) or systemd's fd store needs: fresh
   * fds under their names (handover/named-fds.ts), which the caller closes once
   * sent, and in BPF mode which app each socket slot holds.
   */
  handover(): { fds: NamedFd[]; apps: { name: string; slot: number }[] };
  /** Closes this process's fds without detaching anything: for after a hand-over. */
  release(): void;
}
