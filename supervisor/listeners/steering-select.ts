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
  try {
    return new BpfListeners(log, inherited?.bpf);
  } catch (err) {
    const reason = describeLoadError(err);
    if (choice === "bpf") throw new SwitchyardError("BPF_UNAVAILABLE", `--steering bpf: BPF steering unavailable: ${reason}`, { cause: err });
    log.warn({ event: "steering_fallback", mode: "ports", reason });
    return ports(reason);
  }
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
