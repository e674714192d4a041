import type { Logger } from "../../common/log.js";
import { SwitchyardError } from "../../common/errors.js";
import type { Supervisor } from "../supervisor.js";
import type { NamedFd } from "./named-fds.js";
import { startSuccessor, type Successor } from "./upgrade.js";

export interface UpgradeOutcome {
  pid: number;
  generation: number;
  predecessorPid: number;
  durationMs: number;
}

interface UpgradesOptions {
  supervisor: Supervisor;
  log: Logger;
  /** Fresh copies of the control and admin sockets and the runtime dir's lock, to hand over with the rest. */
  specials(): NamedFd[];
  /** Why no upgrade can start now, if so. */
  refuse(): string | undefined;
  /** The successor serves: hand the service to it and wind this supervisor down. */
  handedOver(successor: Successor): Promise<void>;
}

/**
 * One upgrade at a time, never during a reload, and no reload during one
 * (Supervisor.upgrading): the sockets handed over are the ones the successor
 * serves. After a failure everything is as before and reloads go on.
 */
export class Upgrades {
  private running: Promise<UpgradeOutcome> | undefined;

  constructor(private readonly o: UpgradesOptions) {}

  /** Resolves once no upgrade is under way (whatever its outcome). */
  async settled(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  request(): Promise<UpgradeOutcome> {
    const sup = this.o.supervisor;
    const busy = this.running ? "an upgrade is already under way" : sup.reloads.busy ? "a reload is under way; upgrade once it has ended" : this.o.refuse();
    if (busy !== undefined) {
      this.o.log.warn({ event: "upgrade_refused", reason: busy });
      return Promise.reject(new SwitchyardError("UPGRADE_BUSY", busy));
    }
    this.running = this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async run(): Promise<UpgradeOutcome> {
    const sup = this.o.supervisor;
    const began = Date.now();
    sup.upgrading = true;
    let successor: Successor;
    try {
      successor = await startSuccessor({
        handover: () => {
          const h = sup.handover();
          return { fds: [...h.fds, ...this.o.specials()], state: { ...h.state, counters: sup.counters.handover() } };
        },
        counters: () => sup.metrics.totals(),
        targetStates: () => sup.prober.states(),
        // Its workers' start and health gate, plus a Node start or two.
        deadlineMs: sup.options.startTimeoutMs * 2 + 10_000,
        log: this.o.log,
      });
    } catch (err) {
      sup.upgrading = false;
      throw err;
    }
    await this.o.handedOver(successor);
    return { pid: successor.pid, generation: successor.generation, predecessorPid: process.pid, durationMs: Date.now() - began };
  }
}
