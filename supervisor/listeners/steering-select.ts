import type { Logger } from "../../common/log.js";
import { SwitchyardError } from "../../common/errors.js";
import { describeLoadError, Steering } from "../../native/steering.js";
import type { SteeringChoice } from "../args.js";
import type { ListenerProvider } from "./listener-provider.js";
import { PortListeners } from "./port-listeners.js";
import { BpfListeners } from "./bpf-listeners.js";
import type { Inheritance } from "../handover/inheritance.js";

/**
 * How connections reach the workers' sockets: BPF sk_lookup (one socket per
 * app) or one socket per port. `auto` tries BPF and says in one line why not.
 * What a previous supervisor left (`inherited`) is taken over where the mode
 * matches; a BPF link left behind while this one runs in ports mode is
 * detached, or its program would keep taking the ports.
 */
export function chooseSteering(choice: SteeringChoice, log: Logger, inherited?: Inheritance): ListenerProvider {
  const ports = (reason?: string): PortListeners => {
    if (inherited?.bpf) detachLeftover(inherited.bpf.steering, log);
    return new PortListeners(log, reason, inherited?.listeners);
  };
  if (choice === "ports") return ports();
  // Decided before BPF is loaded: nothing is attached for a mode that cannot serve.
  const perPort = perPortReason(inherited);
  if (perPort !== undefined) {
    // An explicit bpf refuses rather than close them: that would reset what their queues
    // hold, and would not even free the ports while systemd's fd store keeps its copies.
    if (choice === "bpf") throw new SwitchyardError("BPF_UNAVAILABLE", `--steering bpf: ${perPort.reason}; use --steering ports, or auto (which falls back to ports)${perPort.hint}`);
    // info, not warn: socket activation and a switch of mode are supported, and ports mode serves them.
    const reason = perPort.reason + perPort.hint;
    log.info({ event: "steering_fallback", mode: "ports", reason });
    return ports(reason);
  }
  try {
    return new BpfListeners(log, inherited?.bpf);
  } catch (err) {
    const reason = describeLoadError(err);
    if (choice === "bpf") throw new SwitchyardError("BPF_UNAVAILABLE", `--steering bpf: BPF steering unavailable: ${reason}`, { cause: err });
    log.warn({ event: "steering_fallback", mode: "ports", reason });
    return ports(reason);
  }
}

const NAMES_SHOWN = 3;

function shownNames(fds: readonly { name: string }[]): string {
  const names = [...new Set(fds.map((f) => f.name))];
  return names.slice(0, NAMES_SHOWN).join(", ") + (names.length > NAMES_SHOWN ? ` and ${names.length - NAMES_SHOWN} more` : "");
}

/**
 * Why BPF mode cannot take over what was inherited, if it holds per-port
 * listening sockets: BPF mode does not use them, and to its sk_lookup they are
 * foreign listeners it must not rob, so every start would fail with EADDRINUSE
 * (a restart loop under systemd). Ports mode serves them as they are, with the
 * connections already in their queues, which closing them would reset.
 *  - A socket unit's (a name not ours: its FileDescriptorName=, or "ext-…" after
 *    an upgrade): systemd passes them on every start, so ports mode for good.
 *  - Our own "tcp-…" of a ports-mode predecessor (the fd store after a restart
 *    whose unit now says auto, or an upgrade from a supervisor that fell back),
 *    unless BPF state came too: a predecessor in BPF mode, whose steering goes on.
 *    Ports mode stores them again: it lasts until a stop empties the store.
 */
function perPortReason(inherited: Inheritance | undefined): { reason: string; hint: string } | undefined {
  if (!inherited) return undefined;
  const { listeners, socketUnit: unit } = inherited;
  if (unit.length > 0) return { reason: `socket activation passes per-port listening sockets (${shownNames(unit)}), which BPF mode does not use`, hint: "" };
  if (listeners.length === 0 || inherited.bpf !== undefined) return undefined;
  const source = inherited.from === "upgrade" ? "the previous supervisor hands over" : "systemd's fd store holds";
  return {
    reason: `${source} the per-port listening sockets of a supervisor in ports mode (${shownNames(listeners)}), which BPF mode does not use; closing them would reset the connections in their queues`,
    hint: "; to switch to BPF, stop the service (which empties the fd store) and start it",
  };
}

function detachLeftover(steering: NonNullable<Inheritance["bpf"]>["steering"], log: Logger): void {
  if (steering.link === undefined) return;
  try {
    Steering.load(undefined, steering).close();
    log.info({ event: "steering_detached", reason: "inherited from a supervisor in BPF mode; this one runs in ports mode" });
  } catch (err) {
    log.warn({ event: "steering_detach_failed", reason: describeLoadError(err) });
  }
}
