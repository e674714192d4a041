import net from "node:net";
import type { Plan } from "../config/plan.js";
import type { Logger } from "../common/log.js";
import type { ReceivedListener } from "./handoff.js";
import { Router } from "./router.js";
import { balancerFor } from "./balancers/index.js";
import { TargetHealth } from "./target-health.js";
import { DnsCache } from "./dns-cache.js";
import { ProxiedConnection, type AppRuntime, type ProxyHooks } from "./proxy.js";

const LISTEN_BACKLOG = 4096;

/**
 * Accepts on the handed-over listening sockets and proxies each connection.
 * Closing a server here closes only this worker's copy of the fd: the
 * supervisor's copy keeps the socket, and its queue, alive.
 */
export class Acceptor {
  private readonly servers: net.Server[] = [];
  private readonly open = new Set<ProxiedConnection>();
  private readonly router: Router;
  private readonly runtimes = new Map<string, AppRuntime>();
  private readonly health = new TargetHealth();
  private idleWaiters: (() => void)[] = [];
  /** One hooks object for every connection, rather than one per connection. */
  private readonly connHooks: ProxyHooks;

  constructor(
    plan: Plan,
    private readonly listeners: readonly ReceivedListener[],
    private readonly hooks: ProxyHooks & { onAccepted(app: string | undefined): void },
    private readonly log: Logger,
  ) {
    this.router = new Router(plan, listeners.map((l) => l.spec));
    const dns = new DnsCache({
      onStale: (host, err, addresses) => log.warn({ event: "dns_refresh_failed", host, code: err.code, using: addresses.map((a) => a.address) }),
    });
    for (const app of plan.apps) this.runtimes.set(app.name, { app, balancer: balancerFor(app), lookup: dns.lookup });
    this.connHooks = {
      wantsAddresses: hooks.wantsAddresses,
      onUpstreamFailure: (app, f) => hooks.onUpstreamFailure(app, f),
      onConnected: (app, target) => hooks.onConnected(app, target),
      onFinished: (record, conn) => {
        this.open.delete(conn);
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
    await Promise.all(this.listeners.map((l) => this.listen(l)));
  }

  private listen(l: ReceivedListener): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(l, socket));
    this.servers.push(server);
    server.on("error", (err) => this.log.error({ event: "accept_error", listener: l.spec.key, err }, "accept failed"));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      // libuv calls listen(2) again on the shared socket: keep the supervisor's backlog.
      // Passed as an argument: with an fd, Node ignores `backlog` in the options (511).
      server.listen({ fd: l.fd }, LISTEN_BACKLOG, () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  private accept(l: ReceivedListener, socket: net.Socket): void {
    const app = this.router.route(l.spec.key, socket);
    const runtime = app && this.runtimes.get(app.name);
    this.hooks.onAccepted(app?.name);
    const conn = new ProxiedConnection(socket, runtime, this.health, this.connHooks);
    this.open.add(conn);
    conn.start();
  }

  /** Stops accepting; open connections go on. */
  stopAccepting(): void {
    // close() stops accepting at once; its callback would wait for the connections too.
    for (const s of this.servers) s.close();
  }

  /** Resolves once no connection is open. */
  idle(): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
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
