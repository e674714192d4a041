import type { Logger } from "../../common/log.js";
import type { SystemdNotifier } from "../operations/systemd.js";
import { closeAllNamed, FD_NAMES, validFdName, type NamedFd } from "./named-fds.js";
import { stateMemfd, type HandoverState } from "./handover-state.js";

/**
 * Keeps systemd's fd store (FileDescriptorStoreMax= in the unit) holding what
 * a restarted supervisor needs after a crash: every listening socket, in BPF
 * mode the link and maps, and a "state" memfd saying which app each socket
 * is for. While systemd holds a copy, a socket outlives the supervisor and
 * its queue keeps connections for the next one, and the BPF link stays
 * attached. After each cut-over the store is brought to match: new fds
 * stored, retired ones removed (a socket left in the store would go on
 * queueing connections that no one will ever accept).
 */
export class FdStore {
  /** Names the store holds, as far as this process knows. */
  private readonly stored: Set<string>;

  constructor(private readonly notifier: SystemdNotifier, private readonly log: Logger, inheritedNames: Iterable<string> = []) {
    // "state" is always taken to be there: an upgrade's successor gets it inline, not among the
    // fds, yet the predecessor stored one. Removing a name the store lacks does nothing.
    this.stored = new Set([...inheritedNames, FD_NAMES.state]);
  }

  get enabled(): boolean {
    return this.notifier.enabled;
  }

  private chain: Promise<void> = Promise.resolve();

  /** Brings the store to hold exactly `fds` and `state`, after any sync still under way; closes `fds` (fresh copies) once sent. */
  sync(fds: NamedFd[], state: HandoverState): Promise<void> {
    this.chain = this.chain.then(() => this.syncNow(fds, state));
    return this.chain;
  }

  private async syncNow(fds: NamedFd[], state: HandoverState): Promise<void> {
    if (!this.enabled) return closeAllNamed(fds);
    let stateFd: number | undefined;
    try {
      stateFd = stateMemfd(state);
    } catch (err) {
      this.log.warn({ event: "fd_store_state_failed", reason: (err as Error).message });
    }
    const wanted = new Map(fds.filter((f) => validFdName(f.name) && !f.external).map((f) => [f.name, f.fd]));
    let added = 0;
    let removed = 0;
    try {
      for (const name of [...this.stored]) {
        // The state changes with every cut-over: replaced, never kept.
        if (wanted.has(name) && name !== FD_NAMES.state) continue;
        await this.notifier.send(`FDSTOREREMOVE=1\nFDNAME=${name}`);
        this.stored.delete(name);
        removed += 1;
      }
      for (const [name, fd] of wanted) {
        if (this.stored.has(name)) continue;
        // FDPOLL=0: systemd would take a BPF map's EPOLLERR for a dead fd and drop it.
        await this.notifier.send(`FDSTORE=1\nFDPOLL=0\nFDNAME=${name}`, [fd]);
        this.stored.add(name);
        added += 1;
      }
      if (stateFd !== undefined) {
        await this.notifier.send(`FDSTORE=1\nFDPOLL=0\nFDNAME=${FD_NAMES.state}`, [stateFd]);
        this.stored.add(FD_NAMES.state);
      }
    } finally {
      closeAllNamed(fds);
      if (stateFd !== undefined) closeAllNamed([{ name: FD_NAMES.state, fd: stateFd }]);
    }
    this.log.info({ event: "fd_store_updated", stored: this.stored.size, added, removed });
  }
}
