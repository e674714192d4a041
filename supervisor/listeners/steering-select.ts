import type { Logger } from "../../common/log.js";
import { SwitchyardError } from "../../common/errors.js";
import { describeLoadError } from "../../native/steering.js";
import type { SteeringChoice } from "../args.js";
import type { ListenerProvider } from "./listener-provider.js";
import { PortListeners } from "./port-listeners.js";
import { BpfListeners } from "./bpf-listeners.js";

/**
 * How connections reach the workers' sockets: BPF sk_lookup (one socket per
 * app) or one socket per port. `auto` tries BPF and says in one line why not.
 */
export function chooseSteering(choice: SteeringChoice, log: Logger): ListenerProvider {
  if (choice === "ports") return new PortListeners(log);
  try {
    return new BpfListeners(log);
  } catch (err) {
    const reason = describeLoadError(err);
    if (choice === "bpf") throw new SwitchyardError("BPF_UNAVAILABLE", `--steering bpf: BPF steering unavailable: ${reason}`, { cause: err });
    log.warn({ event: "steering_fallback", mode: "ports", reason });
    return new PortListeners(log, reason);
  }
}
