import type { Logger } from "../common/log.js";
import type { SteeringChoice } from "./args.js";
import type { ListenerProvider } from "./listener-provider.js";
import { PortListeners } from "./port-listeners.js";

/** Chooses how connections reach the workers' sockets: BPF sk_lookup, or a socket per port. */
export function chooseSteering(choice: SteeringChoice, log: Logger): ListenerProvider {
  if (choice === "ports") return new PortListeners(log);
  // BPF steering arrives with native/steering.ts; until then auto means ports.
  const reason = "BPF steering not built into this version";
  if (choice === "bpf") throw new Error(reason);
  log.warn({ event: "steering_fallback", mode: "ports", reason });
  return new PortListeners(log, reason);
}
