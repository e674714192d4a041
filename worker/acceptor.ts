import net from "node:net";
import type { Plan, Target } from "../config/plan.js";
import type { Logger } from "../common/log.js";
import type { ReceivedListener } from "./handoff.js";
import { NameChoice, Router } from "./router.js";
import { balancerFor, OpenConnections } from "./balancers/index.js";
import type { TargetHealth } from "./target-health.js";
import { DnsCache } from "./dns-cache.js";
import { ProxiedConnection } from "./proxy.js";
import { RelayedConnection } from "./relayed-connection.js";
import type { AppRuntime, Carried, ProxyHooks } from "./connection.js";
import type { Accepted, Relay } from "../native/relay.js";
import { countAcceptError } from "./metrics.js";
import { CLIENT_AT_LIMIT, CLIENT_TABLE_FULL, closeFd, dupFd, type CounterTable } from "../native/index.js";
import { clientKey } from "./client-key.js";
import { fdLimit, fdsOpen, lackingFds } from "./fd-headroom.js";

const LISTEN_BACKLOG = 4096;

/**
 * Free fds an accepted connection needs: one for its target's socket, and one
 * left over so that the next accept(2) succeeds. When accept(2) itself fails
 * with EMFILE, libuv closes the pending connections behind Node's back (its
 * reserve-fd trick) and Node hears nothing: refusing here first, while an fd
 * is still free, is what makes those refusals visible and counted.
 */
const FDS_PER_ACCEPT = 2;
/** Estimated headroom below which each accept checks for free fds for real; above it, no syscall. */
const FD_CHECK_MARGIN = 256;
/** An episode of refusals ends at the first connection accepted this long after the last refusal: one line per episode, not per flap. */
const ACCEPT_QUIET_MS = 1000;

/** A listening socket accepted on: by a Node server, or by the relay's thread (its tag there). */
type Listening = { l: ReceivedListener; fd: number } & ({ server: net.Server } | { tag: number });

/**
 * Accepts on the handed-over listening sockets and proxies each connection.
 * Closing a socket here closes only this worker's copy of the fd: the
 * supervisor's copy keeps the socket, and its queue, alive.
 *
 * With the native relay, its thread accepts and connects (RelayedConnection),
 * except on sockets where some app reads the client's first bytes in JS (a
 * PROXY header, a TLS server name): there a Node server accepts
 * (ProxiedConnection) and hands established connections to the relay.
 */
export class Acceptor {
  /** The sockets accepting now, with the fd each listens on. */
  private readonly listening: Listening[] = [];
  /** While paused: each socket's fd to listen on again (a copy for a Node server, whose close() closes its own). */
  private readonly paused = new Map<ReceivedListener, number>();
  private readonly open = new Set<Carried>();
  private readonly router: Router;
  private readonly runtimes = new Map<string, AppRuntime>();
  private idleWaiters: (() => void)[] = [];
  /** One hooks object for every connection, rather than one per connection. */
  private readonly connHooks: ProxyHooks;
  private readonly fdLimit = fdLimit();
  /** Fds open once listening, before any connection: the base of the headroom estimate. */
  private fdBase = 0;
  /** stopAccepting() ran: accepting cannot resume. */
  private stopped = false;
  /** Connections counted in the shared table, by slot: released as they finish. */
  private readonly counted = new Map<Carried, number>();
  /** Connections counted per client in the shared table, by bucket. */
  private readonly clientCounted = new Map<Carried, number>();
  private clientTableFull = false;
  /** Whether the last connection accepted found the worker at --max-connections. */
  private atLimit = false;
  /** The current episode of refused connections, if any. */
  private failing: { count: number; lastAt: number } | undefined;

  constructor(
    plan: Plan,
    private readonly listeners: readonly ReceivedListener[],
    private readonly hooks: ProxyHooks & { onAccepted(app: string | undefined): void },
    private readonly log: Logger,
    /** Owned by the worker's entry: the supervisor's check results arrive there, before and after this exists. */
    private readonly health: TargetHealth,
    /** --max-connections: open connections this worker carries at most; null: no limit. */
    private readonly maxConnections: number | null = null,
    /** The shared counters for the apps' MaxConnections: this worker's row and its apps' slots; null: none. */
    private readonly counters: { table: CounterTable; row: number; slots: Record<string, number> } | null = null,
  ) {
    this.router = new Router(plan, listeners.map((l) => l.spec));
    const dns = new DnsCache({
      onStale: (host, err, addresses) => log.warn({ event: "dns_refresh_failed", host, code: err.code, using: addresses.map((a) => a.address) }),
    });
    for (const app of plan.apps) {
      const open = new OpenConnections();
      const isUp = (t: Target): boolean => this.health.isUp(app.name, t);
      this.runtimes.set(app.name, { app, balancer: balancerFor(app, { open, random: Math.random }), open, lookup: dns.lookup, isUp });
    }
    this.connHooks = {
      wantsAddresses: hooks.wantsAddresses,
      relay: hooks.relay,
      onUpstreamFailure: (app, f) => hooks.onUpstreamFailure(app, f),
      onConnected: (app, target) => hooks.onConnected(app, target),
      onFinished: (record, conn) => {
        this.open.delete(conn);
        const slot = this.counted.get(conn);
        if (slot !== undefined) {
          this.counted.delete(conn);
          this.counters!.table.release(slot, this.counters!.row);
        }
        const bucket = this.clientCounted.get(conn);
        if (bucket !== undefined) {
          this.clientCounted.delete(conn);
          this.counters!.table.releaseClient(bucket, this.counters!.row);
        }
        hooks.onFinished(record, conn);
        if (this.open.size === 0) this.notifyIdle();
      },
    };
  }

  get listenerCount(): number {
    return this.listeners.length;
  }

  get connections(): number {
    return this.open.size;
  }

  async start(): Promise<void> {
    await Promise.all(this.listeners.map((l) => this.listen(l, l.fd)));
    this.fdBase = fdsOpen();
  }

  /** Whether the relay's thread accepts on `l`: no app there needs the client's first bytes read in JS. */
  private relayAccepts(l: ReceivedListener): boolean {
    return this.hooks.relay !== null && this.appsOf(l).every((a) => a.serverNames.length === 0 && !a.acceptProxyProtocol);
  }

  private appsOf(l: ReceivedListener): Plan["apps"] {
    return l.spec.apps.flatMap((name) => this.runtimes.get(name)?.app ?? []);
  }

  private async listen(l: ReceivedListener, fd: number): Promise<void> {
    const relay = this.hooks.relay;
    if (relay !== null && this.relayAccepts(l)) {
      const apps = this.appsOf(l);
      // Local addresses cost a getsockname each: only for the access log, routing among apps sharing the socket, PROXY headers out.
      const wantLocal = this.hooks.wantsAddresses || apps.length > 1 || apps.some((a) => a.proxyProtocol !== null);
      const tag = relay.listen(fd, wantLocal, {
        accepted: (a) => this.acceptRelayed(relay, l, a),
        refused: (code) => this.refused(code, l.spec.key),
      });
      this.listening.push({ l, fd, tag });
      return;
    }
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(l, socket));
    this.listening.push({ server, l, fd });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      // libuv calls listen(2) again on the shared socket: keep the supervisor's backlog.
      // Passed as an argument: with an fd, Node ignores `backlog` in the options (511).
      server.listen({ fd }, LISTEN_BACKLOG, () => {
        server.off("error", reject);
        // Once listening, an error is an accept that failed: the server keeps accepting,
        // and Node's error carries no connection to close.
        server.on("error", (err: NodeJS.ErrnoException) => this.refused(err.code ?? "UNKNOWN", l.spec.key));
        resolve();
      });
    });
  }

  /** Refused for want of fds (see FDS_PER_ACCEPT): the code, or undefined to go on; ends an episode of refusals that is over. */
  private lacking(): string | undefined {
    // Each open connection holds about two fds (client, target); only near the limit is it worth two open(2)s.
    if (this.fdLimit !== undefined && this.fdBase + 2 * this.open.size + FD_CHECK_MARGIN >= this.fdLimit) {
      const code = lackingFds(FDS_PER_ACCEPT);
      if (code !== undefined) return code;
    }
    if (this.failing !== undefined && Date.now() - this.failing.lastAt >= ACCEPT_QUIET_MS) {
      this.log.warn({ event: "accept_resumed", count: this.failing.count });
      this.failing = undefined;
    }
    return undefined;
  }

  private acceptRelayed(relay: Relay, l: ReceivedListener, a: Accepted): void {
    const code = this.lacking();
    if (code !== undefined) {
      closeFd(a.fd);
      return this.refused(code, l.spec.key);
    }
    const route = this.router.route(l.spec.key, a);
    // No app here reads a ClientHello (relayAccepts): a choice by name is its default.
    const app = route instanceof NameChoice ? route.pick(undefined) : route;
    this.hooks.onAccepted(app?.name);
    const conn = new RelayedConnection(a, app && this.runtimes.get(app.name), this.health, relay, this.connHooks);
    if (this.admitted(conn)) this.admit(conn, app);
  }

  private accept(l: ReceivedListener, socket: net.Socket): void {
    const code = this.lacking();
    if (code !== undefined) {
      socket.destroy();
      return this.refused(code, l.spec.key);
    }
    const route = this.router.route(l.spec.key, socket);
    const app = route instanceof NameChoice ? undefined : route;
    const runtime = app && this.runtimes.get(app.name);
    // By server name, the app (and its count) is known once the ClientHello is read.
    if (!(route instanceof NameChoice)) this.hooks.onAccepted(app?.name);
    const conn = new ProxiedConnection(socket, runtime, this.health, this.connHooks);
    if (!this.admitted(conn)) return;
    if (route instanceof NameChoice) {
      const byName = (): void => conn.readClientHello((serverName) => this.admitByName(conn, route, serverName));
      return route.acceptProxyProtocol ? conn.readProxyHeader(byName) : byName();
    }
    // Behind a balancer the client is who its PROXY header says: limits wait for it.
    if (app?.acceptProxyProtocol) return conn.readProxyHeader(() => this.admit(conn, app));
    this.admit(conn, app);
  }

  /** Counts `conn` as open; false when the worker is at --max-connections (it is refused). */
  private admitted(conn: Carried): boolean {
    // Counted before the check: the refused connection is accounted for like any other (access log, metrics).
    const full = this.maxConnections !== null && this.open.size >= this.maxConnections;
    if (full !== this.atLimit) {
      this.atLimit = full;
      // Once per episode, not per connection: the access log and metrics count each one.
      if (full) this.log.warn({ event: "connection_limit_reached", max_connections: this.maxConnections });
      else this.log.info({ event: "connection_limit_cleared", max_connections: this.maxConnections });
    }
    this.open.add(conn);
    if (full) conn.refuse("worker_limit");
    return !full;
  }

  /** The app the ClientHello names (or the port's default); none: closed as no_app. */
  private admitByName(conn: ProxiedConnection, choice: NameChoice, serverName: string | undefined): void {
    const app = choice.pick(serverName);
    this.hooks.onAccepted(app?.name);
    if (!app) return conn.refuse("no_app");
    conn.assign(this.runtimes.get(app.name)!);
    this.admit(conn, app);
  }

  /** The app's limits, then the connection is carried. */
  private admit(conn: Carried, app: Plan["apps"][number] | undefined): void {
    if (app?.maxConnections != null && !this.countIn(conn, app.name, app.maxConnections)) return conn.refuse("app_limit");
    if (app?.maxConnectionsPerClient != null && !this.countClient(conn, app.name, app.maxConnectionsPerClient)) return conn.refuse("client_limit");
    conn.start();
  }

  /** Counts `conn` for its client address over all workers; false when that client is at `limit`. */
  private countClient(conn: Carried, app: string, limit: number): boolean {
    const slot = this.counters?.slots[app];
    const address = conn.clientAddressSeen;
    if (slot === undefined || address === undefined) return true;
    const bucket = this.counters!.table.acquireClient(clientKey(slot, address), this.counters!.row, limit);
    if (bucket === CLIENT_AT_LIMIT) return false;
    if (bucket === CLIENT_TABLE_FULL) {
      // Let through rather than refuse a client for others' sake; said once.
      if (!this.clientTableFull) this.log.warn({ event: "client_table_full", app });
      this.clientTableFull = true;
      return true;
    }
    this.clientCounted.set(conn, bucket);
    return true;
  }

  /** Counts `conn` into its app's total over all workers; false when the app is at `limit`. */
  private countIn(conn: Carried, app: string, limit: number): boolean {
    const slot = this.counters?.slots[app];
    if (slot === undefined) return true;
    if (!this.counters!.table.acquire(slot, this.counters!.row, limit)) return false;
    this.counted.set(conn, slot);
    return true;
  }

  /** Counts a refused connection; logs once when an episode of them begins. */
  private refused(code: string, listener: string): void {
    countAcceptError(code);
    if (this.failing === undefined) {
      this.failing = { count: 0, lastAt: 0 };
      this.log.error({ event: "accept_failing", code, listener, open_connections: this.open.size, fd_limit: this.fdLimit }, "refusing connections");
    }
    this.failing.count += 1;
    this.failing.lastAt = Date.now();
  }

  /** Stops accepting for good; open connections go on. Closes this worker's copies of the sockets only. */
  stopAccepting(): void {
    this.stopped = true;
    for (const listening of this.listening.splice(0)) {
      // A server's close() stops accepting at once (its callback would wait for the connections too) and closes its fd.
      if ("server" in listening) listening.server.close();
      else this.unlisten(listening, true);
    }
    for (const fd of this.paused.values()) closeFd(fd);
    this.paused.clear();
  }

  /** The relay's thread accepts no more on it: what it accepted before is taken now, not after the worker drained. */
  private unlisten(listening: Listening & { tag: number }, close: boolean): void {
    this.hooks.relay!.unlisten(listening.tag);
    if (close) closeFd(listening.fd);
  }

  /**
   * Stops accepting for now (overload): the kernel's queue and the other workers
   * take new connections. A server's close() closes its fd, so a copy is kept
   * first to listen on again: one fd per socket either way.
   */
  pauseAccepting(): void {
    for (const listening of this.listening.splice(0)) {
      if ("server" in listening) {
        this.paused.set(listening.l, dupFd(listening.fd));
        listening.server.close();
      } else {
        this.unlisten(listening, false);
        this.paused.set(listening.l, listening.fd);
      }
    }
  }

  /** Accepts again after pauseAccepting(). */
  async resumeAccepting(): Promise<void> {
    if (this.stopped || this.paused.size === 0) return;
    const copies = [...this.paused];
    this.paused.clear();
    await Promise.all(copies.map(([l, fd]) => this.listen(l, fd)));
    // A drain while listen() completed found these servers and closed them; nothing left to do.
  }

  get accepting(): boolean {
    return this.listening.length > 0;
  }

  /** Resolves once no connection is open. */
  idle(): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Closes the connections accepted more than `boundMs` ago that still wait
   * for a target (overload): served this late, they would only add to the
   * latency of the rest. Returns how many.
   */
  shedWaiting(boundMs: number): number {
    const before = Date.now() - boundMs;
    let shed = 0;
    for (const c of this.open) {
      if (c.dialling && c.startedAt <= before) {
        c.shed();
        shed += 1;
      }
    }
    return shed;
  }

  /** Cuts every open connection (drain deadline). */
  closeAll(): void {
    for (const c of [...this.open]) c.shutdown();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
