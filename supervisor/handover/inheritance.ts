// What a starting supervisor received from the one before it, sorted by use.
import type { Logger } from "../../common/log.js";
import type { InheritedBpf } from "../listeners/bpf-listeners.js";
import { appSlotOf, closeAllNamed, FD_NAMES, isOwnListenerName, type NamedFd } from "./named-fds.js";
import { readStateMemfd, type HandoverState } from "./handover-state.js";

export interface Inheritance {
  from: "upgrade" | "systemd";
  /** Listening sockets for ports mode, matched to the config by address and port. */
  listeners: NamedFd[];
  /** Those of `listeners` a socket unit passes (names not ours): they come with every start, never from the fd store. */
  socketUnit: NamedFd[];
  /** BPF mode: link, maps and app sockets, when all three maps came. */
  bpf: InheritedBpf | undefined;
  control: number | undefined;
  admin: number | undefined;
  lock: number | undefined;
  /** Upgrade only: the MaxConnections table and who counts where in it. */
  counters: { fd: number; slots: { name: string; slot: number }[]; rows: number[] } | undefined;
  /** The last generation the previous supervisor started (0: unknown). */
  generation: number;
  /** Every name received: what systemd's fd store holds now, and a socket unit's. */
  names: Set<string>;
  /** Every fd received: the caller closes them all once the providers have taken copies. */
  all: NamedFd[];
}

/**
 * Sorts `fds` by name. `state` comes inline in an upgrade; from systemd it is
 * the "state" memfd among the fds. BPF fds without a usable state or without
 * all three maps cannot be used: logged, and left to be closed.
 */
export function sortInheritance(from: Inheritance["from"], fds: NamedFd[], inlineState: HandoverState | undefined, log: Logger): Inheritance {
  const byName = new Map<string, number>();
  for (const f of fds) if (!byName.has(f.name)) byName.set(f.name, f.fd);
  let state = inlineState;
  const stateFd = byName.get(FD_NAMES.state);
  if (state === undefined && stateFd !== undefined) {
    const read = readStateMemfd(stateFd);
    if (typeof read === "string") log.warn({ event: "inherited_state_unusable", reason: read });
    else state = read;
  }
  const special = new Set<string>(Object.values(FD_NAMES));
  const listeners = fds.filter((f) => !special.has(f.name) && appSlotOf(f.name) === undefined);
  const appFds = fds.filter((f) => appSlotOf(f.name) !== undefined);

  let bpf: InheritedBpf | undefined;
  const [sockets, ports, counters] = [byName.get(FD_NAMES.bpfSockets), byName.get(FD_NAMES.bpfPorts), byName.get(FD_NAMES.bpfCounters)];
  if (sockets !== undefined && ports !== undefined && counters !== undefined) {
    const names = new Map((state?.apps ?? []).map((a) => [a.slot, a.name]));
    const apps: InheritedBpf["apps"] = [];
    for (const f of appFds) {
      const slot = appSlotOf(f.name)!;
      const name = names.get(slot);
      if (name !== undefined) apps.push({ name, slot, fd: f.fd });
    }
    if (apps.length < appFds.length) log.warn({ event: "inherited_fds_unusable", what: "app sockets of unknown apps", count: appFds.length - apps.length });
    const link = byName.get(FD_NAMES.bpfLink);
    bpf = { steering: { sockets, ports, counters, ...(link !== undefined ? { link } : {}) }, apps };
  } else if (appFds.length > 0 || byName.has(FD_NAMES.bpfLink)) {
    log.warn({ event: "inherited_fds_unusable", what: "BPF state without its three maps", count: appFds.length + (byName.has(FD_NAMES.bpfLink) ? 1 : 0) });
  }
  return {
    from,
    listeners,
    socketUnit: listeners.filter((f) => !isOwnListenerName(f.name)),
    bpf,
    control: byName.get(FD_NAMES.control),
    admin: byName.get(FD_NAMES.admin),
    lock: byName.get(FD_NAMES.lock),
    counters: byName.has(FD_NAMES.counters) && state?.counters ? { fd: byName.get(FD_NAMES.counters)!, ...state.counters } : undefined,
    generation: state?.generation ?? 0,
    names: new Set(fds.map((f) => f.name)),
    all: fds,
  };
}

export function closeInheritance(i: Inheritance): void {
  closeAllNamed(i.all);
  i.all = [];
}
