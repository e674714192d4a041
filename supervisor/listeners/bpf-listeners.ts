import type { Plan } from "../../config/plan.js";
import type { Logger } from "../../common/log.js";
import { SwitchyardError, isSyscallError } from "../../common/errors.js";
import { planPrefix } from "../../config/addresses.js";
import { closeFd, dupFd, listenTcp, socketInode, socketName } from "../../native/index.js";
import { Steering, STEER_SOCKETS_MAX, type PortBinding } from "../../native/steering.js";
import { ConflictReport, ListenerIndex } from "./listen-conflicts.js";
import type { ListenerProvider, PreparedListeners, SteeringStatus } from "./listener-provider.js";
import { PROXY_LISTEN_OPTIONS } from "./proxy-listen-options.js";
import { listeningSockets } from "./listening-sockets.js";
import { socketGroups, type SocketGroup } from "./name-groups.js";
import { appFdName, FD_NAMES, type NamedFd } from "../handover/named-fds.js";

/** What a previous supervisor left: its link and maps, and its apps' sockets by slot. */
export interface InheritedBpf {
  steering: { link?: number; sockets: number; ports: number; counters: number };
  apps: { name: string; slot: number; fd: number }[];
}

const BACKLOG = 4096;

interface AppSocket {
  name: string;
  slot: number;
  fd: number;
  /** Families the socket can take: a dual-stack socket takes both. */
  families: ReadonlySet<4 | 6>;
}

function bindingKey(b: Omit<PortBinding, "slot">): string {
  return `${b.family}|${b.prefix}|${b.port}`;
}

/**
 * BPF mode: one listening socket per app, whatever its number of ports. The
 * sk_lookup program (attached to this network namespace, never pinned, so it
 * goes away with us) sends each configured (address, port) to its app's
 * socket; ports change by map updates, at cut-over, without a socket opened or closed.
 */
export class BpfListeners implements ListenerProvider {
  readonly mode = "bpf" as const;
  private readonly steering: Steering;
  private live = new Map<string, AppSocket>();
  /** What the port map holds: binding key → slot. */
  private liveBindings = new Map<string, PortBinding>();
  private liveApps: { name: string; ports: number }[] = [];
  /**
   * Inodes of every app socket we opened that may still listen: retired ones
   * live on in draining workers. Pruned to what /proc still lists at each check.
   */
  private readonly ownInodes = new Set<number>();
  /** release() has run: the steering object is closed here, its state lives on elsewhere. */
  private released = false;
  private readonly freeSlots: number[] = Array.from({ length: STEER_SOCKETS_MAX }, (_, i) => STEER_SOCKETS_MAX - 1 - i);

  /**
   * With `inherited`, the program takes over the previous supervisor's link
   * and maps (native/steering.ts) and its sockets keep their slots: the port
   * map is never emptied, so every port keeps steering throughout. The
   * inherited fds stay the caller's; what is kept is duplicated.
   */
  constructor(private readonly log: Logger, inherited?: InheritedBpf) {
    this.steering = BpfListeners.load(inherited, log);
    try {
      if (inherited?.steering.link === undefined || !this.steering.linkInfo()) this.steering.attach();
      if (inherited) this.adopt(inherited);
    } catch (err) {
      for (const s of this.live.values()) closeFd(s.fd);
      this.live.clear();
      if (inherited) this.steering.release();
      else this.steering.close();
      throw err;
    }
  }

  /**
   * An inherited link that has been detached meanwhile (a supervisor that
   * stopped without the fd store) cannot take the new program (ENOLINK): the
   * maps are still taken over, and a new link is attached.
   */
  private static load(inherited: InheritedBpf | undefined, log: Logger): Steering {
    try {
      return Steering.load(undefined, inherited?.steering);
    } catch (err) {
      if (inherited?.steering.link === undefined || !isSyscallError(err) || err.code !== "ENOLINK") throw err;
      log.warn({ event: "steering_link_gone", reason: "the inherited BPF link was detached; attaching a new one" });
      const { link: _gone, ...maps } = inherited.steering;
      return Steering.load(undefined, maps);
    }
  }

  private adopt(inherited: InheritedBpf): void {
    const taken = new Set<number>();
    for (const a of inherited.apps) {
      if (a.slot < 0 || a.slot >= STEER_SOCKETS_MAX || taken.has(a.slot) || this.live.has(a.name)) continue;
      const fd = dupFd(a.fd);
      const families = new Set<4 | 6>(socketName(fd).family === 6 ? [4, 6] : [4]);
      this.live.set(a.name, { name: a.name, slot: a.slot, fd, families });
      this.ownInodes.add(socketInode(fd));
      taken.add(a.slot);
    }
    this.freeSlots.splice(0, this.freeSlots.length, ...this.freeSlots.filter((s) => !taken.has(s)));
    for (const b of this.steering.portEntries()) this.liveBindings.set(bindingKey(b), b);
    this.liveApps = [...this.live.values()].map((s) => ({ name: s.name, ports: 0 }));
    this.log.info({ event: "steering_inherited", sockets: this.live.size, ports: this.liveBindings.size });
  }

  private openAppSocket(name: string, slot: number): AppSocket {
    const s = this.listenAppSocket(name, slot);
    try {
      this.ownInodes.add(socketInode(s.fd));
    } catch (err) {
      closeFd(s.fd);
      throw err;
    }
    return s;
  }

  private listenAppSocket(name: string, slot: number): AppSocket {
    try {
      // An IPv4-mapped bind keeps the socket dual-stack (a plain [::1] bind makes it
      // IPv6-only, and sk_assign would refuse it IPv4 connections); reachable
      // without steering only at 127.0.0.1, on an ephemeral port.
      return { name, slot, fd: listenTcp("::ffff:127.0.0.1", 0, BACKLOG, { ...PROXY_LISTEN_OPTIONS, v6only: false }), families: new Set([4, 6]) };
    } catch (err) {
      if (!isSyscallError(err) || (err.code !== "EAFNOSUPPORT" && err.code !== "EADDRNOTAVAIL")) throw err;
      this.log.warn({ event: "ipv6_unavailable", app: name, code: err.code });
      return { name, slot, fd: listenTcp("127.0.0.1", 0, BACKLOG, PROXY_LISTEN_OPTIONS), families: new Set([4]) };
    }
  }

  prepare(plan: Plan): PreparedListeners {
    const opened: AppSocket[] = [];
    // Keyed by socket: an app's name, or a group's key for apps sharing a port by server name.
    const next = new Map<string, AppSocket>();
    const groups = socketGroups(plan);
    const appsOf = new Map([...groups.values()].map((g) => [g.key, g.apps] as const));
    try {
      for (const app of plan.apps) {
        const key = groups.get(app.name)!.key;
        if (next.has(key)) continue;
        let s = this.live.get(key);
        if (!s) {
          const slot = this.freeSlots.pop();
          if (slot === undefined) throw new SwitchyardError("LISTEN_FAILED", `more than ${STEER_SOCKETS_MAX} sockets`);
          try {
            s = this.openAppSocket(key, slot);
          } catch (err) {
            this.freeSlots.push(slot);
            throw err;
          }
          opened.push(s);
        }
        next.set(key, s);
      }
    } catch (err) {
      for (const s of opened) this.releaseSocket(s);
      const code = isSyscallError(err) ? err.code : "";
      throw err instanceof SwitchyardError ? err : new SwitchyardError("LISTEN_FAILED", `cannot open an app socket: ${code || (err as Error).message}`, { cause: err });
    }
    let bindings: Map<string, PortBinding>;
    try {
      bindings = this.bindingsOf(plan, next, groups);
    } catch (err) {
      for (const s of opened) this.releaseSocket(s);
      throw err instanceof SwitchyardError ? err : new SwitchyardError("LISTEN_FAILED", `cannot check for listening sockets: ${(err as Error).message}`, { cause: err });
    }
    let settled = false;
    return {
      listeners: [...next.values()].map((s) => ({ spec: { key: `app:${s.name}`, apps: appsOf.get(s.name)! }, fd: s.fd })),
      commit: () => {
        if (settled) return;
        settled = true;
        this.cutOver(plan, next, bindings);
      },
      rollback: () => {
        if (settled) return;
        settled = true;
        for (const s of opened) this.releaseSocket(s);
      },
    };
  }

  /**
   * The port map for `plan`. Throws LISTEN_FAILED if a binding we do not steer
   * yet would take connections another socket in this namespace listens for:
   * sk_lookup runs first, so steering it would steal the port (ports mode gets
   * EADDRINUSE). Bindings already steered are not checked: their port is ours.
   */
  private bindingsOf(plan: Plan, next: Map<string, AppSocket>, groups: Map<string, SocketGroup>): Map<string, PortBinding> {
    const bindings = new Map<string, PortBinding>();
    const conflicts = new ConflictReport();
    let index: ListenerIndex | undefined;
    for (const app of plan.apps) {
      const s = next.get(groups.get(app.name)!.key)!;
      for (const text of app.addresses) {
        const cidr = planPrefix(text);
        if (!s.families.has(cidr.family)) continue;
        for (const port of app.ports) {
          const b: PortBinding = { family: cidr.family, prefix: text, port, slot: s.slot };
          const key = bindingKey(b);
          bindings.set(key, b);
          if (this.liveBindings.has(key)) continue;
          // Read /proc only when something is new: a reload of targets alone skips it.
          index ??= this.listenerIndex();
          const robbed = index.robbed(cidr, port);
          if (robbed) conflicts.add(robbed, app.name);
        }
      }
    }
    if (!conflicts.empty) throw new SwitchyardError("LISTEN_FAILED", conflicts.message());
    return bindings;
  }

  private listenerIndex(): ListenerIndex {
    const sockets = listeningSockets();
    const listed = new Set(sockets.map((s) => s.inode));
    for (const inode of this.ownInodes) if (!listed.has(inode)) this.ownInodes.delete(inode);
    return new ListenerIndex(sockets, this.ownInodes);
  }

  /** New sockets into the sockmap, then the port map, then retire what the plan dropped. */
  private cutOver(plan: Plan, next: Map<string, AppSocket>, bindings: Map<string, PortBinding>): void {
    for (const s of next.values()) if (!this.live.has(s.name)) this.steering.setAppSocket(s.slot, s.fd);
    const changed = [...bindings.values()].filter((b) => this.liveBindings.get(bindingKey(b))?.slot !== b.slot);
    const removed = [...this.liveBindings.entries()].filter(([k]) => !bindings.has(k)).map(([, b]) => b);
    // Of the bindings set, those steered to another app until now: what a reload moved.
    const moved = changed.filter((b) => this.liveBindings.has(bindingKey(b))).length;
    this.steering.setPorts(changed);
    this.steering.deletePorts(removed);
    for (const [name, s] of this.live) {
      if (next.has(name)) continue;
      this.steering.removeAppSocket(s.slot);
      this.releaseSocket(s);
    }
    this.live = next;
    this.liveBindings = bindings;
    this.liveApps = plan.apps.map((a) => ({ name: a.name, ports: a.ports.length }));
    this.log.info({ event: "steering_updated", ports_set: changed.length, ports_moved: moved, ports_removed: removed.length, sockets: next.size });
  }

  private releaseSocket(s: AppSocket): void {
    closeFd(s.fd);
    this.freeSlots.push(s.slot);
  }

  status(): SteeringStatus {
    return { mode: this.mode, sockets: this.live.size, apps: this.liveApps };
  }

  steeredCounts(): Map<string, number> | undefined {
    // Handed over: the counters map counts on, and the successor reports it.
    if (this.released) return undefined;
    const counters = this.steering.counters();
    const out = new Map<string, number>();
    // A socket shared by server name is counted per app by the workers (switchyard_connections_total).
    for (const s of this.live.values()) if (!s.name.startsWith("sni:")) out.set(s.name, counters.get(s.slot)?.steered ?? 0);
    return out;
  }

  closeAll(): void {
    this.steering.close();
    for (const s of this.live.values()) closeFd(s.fd);
    this.live.clear();
  }

  /** What the next supervisor needs, as fresh fds the caller sends and closes. */
  handover(): { fds: NamedFd[]; apps: { name: string; slot: number }[] } {
    const e = this.steering.exportFds();
    const fds: NamedFd[] = [
      { name: FD_NAMES.bpfSockets, fd: e.sockets },
      { name: FD_NAMES.bpfPorts, fd: e.ports },
      { name: FD_NAMES.bpfCounters, fd: e.counters },
    ];
    if (e.link !== null) fds.push({ name: FD_NAMES.bpfLink, fd: e.link });
    for (const s of this.live.values()) fds.push({ name: appFdName(s.slot), fd: dupFd(s.fd) });
    return { fds, apps: [...this.live.values()].map((s) => ({ name: s.name, slot: s.slot })) };
  }

  /** Lets go of everything without detaching: the link and sockets live on where they were handed. */
  release(): void {
    this.released = true;
    this.steering.release();
    for (const s of this.live.values()) closeFd(s.fd);
    this.live.clear();
  }
}
