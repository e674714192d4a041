import type { Plan } from "../../config/plan.js";
import type { Logger } from "../../common/log.js";
import { SwitchyardError, isSyscallError } from "../../common/errors.js";
import { closeFd, dupFd, listenTcp, socketInode, socketName } from "../../native/index.js";
import { listeningSockets } from "./listening-sockets.js";
import { listenerKey, portListeners, type PortListenerSpec } from "./listener-layout.js";
import { isOwnListenerName, listenerFdName, type NamedFd } from "../handover/named-fds.js";
import { PROXY_LISTEN_OPTIONS } from "./proxy-listen-options.js";
import type { ListenerProvider, PreparedListeners, SteeringStatus } from "./listener-provider.js";

const BACKLOG = 4096;

interface OpenListener {
  spec: PortListenerSpec;
  fd: number;
}

/** Ports mode: one listening socket per address and port. */
export class PortListeners implements ListenerProvider {
  readonly mode = "ports" as const;
  private live = new Map<string, OpenListener>();
  private liveApps: { name: string; ports: number }[] = [];
  private warnedNoIpv6 = false;
  /** Inherited listening sockets (an upgrade, systemd) by key, until a plan takes them; the rest close at the first commit. */
  private readonly adoptable = new Map<string, number>();
  /** Keys of listeners a socket unit passes (systemd hands them to every start): kept out of the fd store. */
  private readonly external = new Set<string>();

  /**
   * `inherited`: listening sockets a previous supervisor or systemd passed on;
   * each one the plan needs is used as it is, queue and all, instead of a new
   * bind. The caller keeps its fds; what is kept is duplicated.
   */
  constructor(private readonly log: Logger, private readonly bpfOffReason?: string, inherited: readonly NamedFd[] = []) {
    const listening = inherited.length > 0 ? new Set(listeningSockets().map((s) => s.inode)) : new Set<number>();
    for (const { name, fd } of inherited) {
      let key: string;
      try {
        if (!listening.has(socketInode(fd))) throw new Error("not a listening TCP socket");
        const n = socketName(fd);
        key = listenerKey(n.address, n.port, n.family);
      } catch (err) {
        log.warn({ event: "inherited_fd_unusable", name, reason: (err as Error).message });
        continue;
      }
      if (this.adoptable.has(key)) continue;
      this.adoptable.set(key, dupFd(fd));
      if (!isOwnListenerName(name)) this.external.add(key);
    }
  }

  prepare(plan: Plan): PreparedListeners {
    const wanted = portListeners(plan);
    const opened: OpenListener[] = [];
    const next = new Map<string, OpenListener>();
    try {
      for (const spec of wanted) {
        const existing = this.live.get(spec.key);
        if (existing) {
          next.set(spec.key, { spec, fd: existing.fd });
          continue;
        }
        const inherited = this.adoptable.get(spec.key);
        this.adoptable.delete(spec.key);
        const fd = inherited ?? this.open(spec);
        if (fd === undefined) continue;
        const l = { spec, fd };
        opened.push(l);
        next.set(spec.key, l);
      }
    } catch (err) {
      for (const l of opened) closeFd(l.fd);
      throw err;
    }
    let settled = false;
    return {
      listeners: [...next.values()].map((l) => ({ spec: { key: l.spec.key, apps: l.spec.apps }, fd: l.fd })),
      commit: () => {
        if (settled) return;
        settled = true;
        for (const [key, l] of this.live) if (!next.has(key)) closeFd(l.fd);
        // Inherited sockets no plan has asked for: this supervisor does not serve them.
        for (const fd of this.adoptable.values()) closeFd(fd);
        this.adoptable.clear();
        this.live = next;
        this.liveApps = plan.apps.map((a) => ({ name: a.name, ports: a.ports.length }));
      },
      rollback: () => {
        if (settled) return;
        settled = true;
        for (const l of opened) closeFd(l.fd);
      },
    };
  }

  private open(spec: PortListenerSpec): number | undefined {
    try {
      return listenTcp(spec.host, spec.port, BACKLOG, { ...PROXY_LISTEN_OPTIONS, v6only: true });
    } catch (err) {
      const noIpv6 = isSyscallError(err) && (err.code === "EAFNOSUPPORT" || err.code === "EADDRNOTAVAIL");
      if (spec.family === 6 && spec.wildcard && noIpv6) {
        if (!this.warnedNoIpv6) this.log.warn({ event: "ipv6_unavailable", listener: spec.key, code: (err as { code: string }).code });
        this.warnedNoIpv6 = true;
        return undefined;
      }
      const code = isSyscallError(err) ? err.code : "unknown";
      throw new SwitchyardError("LISTEN_FAILED", `cannot listen on ${spec.key} (app ${spec.apps.join(", ")}): ${code}${code === "EADDRINUSE" ? this.ownHolder(spec) : ""}`, { cause: err });
    }
  }

  /**
   * When the port is held by one of our own listeners on another address, say
   * so: the new socket must be open before the old one closes, and closing a
   * listener resets the connections in its queue, so a port cannot move
   * between a specific and the wildcard address without a restart.
   */
  private ownHolder(spec: PortListenerSpec): string {
    const holder = [...this.live.values()].find((l) => l.spec.port === spec.port && l.spec.family === spec.family && l.spec.key !== spec.key);
    if (!holder) return "";
    return `: this supervisor listens on ${holder.spec.key} (app ${holder.spec.apps.join(", ")}); in ports mode a port cannot change its address on reload (restart switchyard, or use --steering bpf)`;
  }

  status(): SteeringStatus {
    return { mode: this.mode, ...(this.bpfOffReason ? { bpfOffReason: this.bpfOffReason } : {}), sockets: this.live.size, apps: this.liveApps };
  }

  steeredCounts(): undefined {
    return undefined;
  }

  closeAll(): void {
    for (const l of this.live.values()) closeFd(l.fd);
    for (const fd of this.adoptable.values()) closeFd(fd);
    this.live.clear();
    this.adoptable.clear();
  }

  /** Fresh copies of the live sockets under their names, for the caller to send and close. */
  handover(): { fds: NamedFd[]; apps: [] } {
    return {
      // A socket unit's listener keeps that status in an upgrade: "ext-" is not one of our names.
      fds: [...this.live.values()].map((l) => (this.external.has(l.spec.key) ? { name: `ext-${listenerFdName(l.spec.key)}`, fd: dupFd(l.fd), external: true } : { name: listenerFdName(l.spec.key), fd: dupFd(l.fd) })),
      apps: [],
    };
  }

  /** Nothing is detached in ports mode: letting go is closing. */
  release(): void {
    this.closeAll();
  }
}
