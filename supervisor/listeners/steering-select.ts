import type { Logger } from "../../common/log.js";
import { SwitchyardError } from "../../common/errors.js";
import { describeLoadError, Steering } from "../../native/steering.js";
import type { SteeringChoice } from "../args.js";
import type { ListenerProvider } from "./listener-provider.js";
import { PortListeners } from "./port-listeners.js";
import { BpfListeners } from "./bpf-listeners.js";
import type { Inheritance } from "../handover/inheritance.js";
import { isOwnListenerName } from "../handover/named-fds.js";

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
  const unit = socketUnitReason(inherited);
  if (unit !== undefined) {
    if (choice === "bpf") throw new SwitchyardError("BPF_UNAVAILABLE", `--steering bpf: ${unit}; use --steering ports, or auto (which falls back to ports)`);
    // info, not warn: socket activation is a supported setup, and ports mode its only way.
    log.info({ event: "steering_fallback", mode: "ports", reason: unit });
    return ports(unit);
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

/**
 * Why BPF mode cannot serve what was inherited, if it holds a socket unit's
 * listeners (a name not ours: its FileDescriptorName=, or "ext-…" after an
 * upgrade). They are per-port sockets on the apps' ports, which BPF mode does
 * not use: to its sk_lookup they are foreign listeners it must not rob, so
 * every start would fail with EADDRINUSE (a restart loop under systemd).
 * Our own "tcp-…" listeners (a ports-mode predecessor) do not count.
 */
function socketUnitReason(inherited: Inheritance | undefined): string | undefined {
  const names = [...new Set((inherited?.listeners ?? []).filter((f) => !isOwnListenerName(f.name)).map((f) => f.name))];
  if (names.length === 0) return undefined;
  const shown = names.slice(0, NAMES_SHOWN).join(", ") + (names.length > NAMES_SHOWN ? ` and ${names.length - NAMES_SHOWN} more` : "");
  return `socket activation passes per-port listening sockets (${shown}), which BPF mode does not use`;
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
