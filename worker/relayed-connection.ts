import net from "node:net";
import type { AppPlan, Target } from "../config/plan.js";
import type { TargetHealth } from "./target-health.js";
import type { ConnectFailure } from "./connect.js";
import { closeFd } from "../native/index.js";
import type { Accepted, DialFailure, Relay, RelayEnd, RelayWatcher } from "../native/relay.js";
import { buildV1, buildV2 } from "./proxy-protocol.js";
import { unmapIPv4, type AppRuntime, type Carried, type EndReason, type ProxyHooks } from "./connection.js";

/** Whether a target's host is an IP address (no lookup), once per target of a plan rather than per connection. */
const literalHosts = new WeakMap<Target, boolean>();
function isLiteral(target: Target): boolean {
  let literal = literalHosts.get(target);
  if (literal === undefined) literalHosts.set(target, (literal = net.isIP(target.host) !== 0));
  return literal;
}

/**
 * A connection the relay's thread accepted (native/relay_accept.c), carried
 * without a Node socket: JS routes it, applies the limits and orders the
 * targets; the relay's thread connects to each in turn (redial after a
 * failure) and carries the bytes. What must read the client's first bytes in
 * JS (a PROXY header in, a TLS server name) takes the Node path instead
 * (worker/proxy.ts).
 */
export class RelayedConnection implements Carried, RelayWatcher {
  readonly startedAt = Date.now();
  /** The client's fd until dial() gives it to the relay. */
  private fd: number | undefined;
  /** The relay's id from dial() until done(). */
  private id: number | undefined;
  private started = false;
  /** A target answered: the relay carries the bytes. */
  private carried = false;
  private finished = false;
  private endReason: EndReason = "closed";
  private order: readonly Target[] = [];
  private nextTarget = 0;
  /** The target dialled, then carried to. */
  private target: Target | undefined;
  /** More addresses of the target's name, tried before the target counts as failed. */
  private addresses: string[] = [];
  private relayed: RelayEnd | undefined;
  private readonly clientAddress: string | undefined;
  private readonly clientPort: number | undefined;
  private readonly localAddress: string | undefined;
  private readonly localPort: number | undefined;

  constructor(
    accepted: Accepted,
    private readonly runtime: AppRuntime | undefined,
    private readonly health: TargetHealth,
    private readonly relay: Relay,
    private readonly hooks: ProxyHooks,
  ) {
    this.fd = accepted.fd;
    this.clientAddress = unmapIPv4(accepted.address);
    this.clientPort = accepted.port;
    this.localAddress = accepted.localAddress;
    this.localPort = accepted.localPort;
  }

  get clientAddressSeen(): string | undefined {
    return this.clientAddress;
  }

  get dialling(): boolean {
    return this.started && !this.carried && !this.finished;
  }

  start(): void {
    const runtime = this.runtime;
    if (!runtime) return this.fail("no_app");
    this.started = true;
    const { balancer, isUp } = runtime;
    this.order = balancer.order(isUp, balancer.usesClient ? this.clientAddress : undefined);
    this.tryNext(runtime);
  }

  private tryNext(runtime: AppRuntime): void {
    const target = this.order[this.nextTarget++];
    if (target === undefined) return this.fail("no_target");
    this.target = target;
    if (isLiteral(target)) return this.dial(runtime.app, target.host);
    runtime.lookup(target.host, { all: true }, (err, found) => {
      // Shed or cut meanwhile: fail() has closed the client, or its shutdown is on its way.
      if (this.finished || this.endReason !== "closed") return;
      const addresses = Array.isArray(found) ? found.map((a) => a.address) : [found];
      if (err || addresses.length === 0) return this.targetFailed(runtime, { target, reason: "error", code: err?.code ?? "ENOTFOUND" });
      this.addresses = addresses;
      this.dial(runtime.app, this.addresses.shift()!);
    });
  }

  private dial(app: AppPlan, host: string): void {
    const port = this.target!.port;
    if (this.id !== undefined) return this.relay.redial(this.id, host, port, app.connectTimeoutMs);
    let header: Buffer | undefined;
    if (app.proxyProtocol !== null) {
      header = this.proxyHeader(app.proxyProtocol);
      if (header === undefined) return this.fail("client_error");
    }
    try {
      this.id = this.relay.dial(this.fd!, host, port, { connectTimeoutMs: app.connectTimeoutMs, idleTimeoutMs: app.idleTimeoutMs, toTarget: header }, this);
      this.fd = undefined;
    } catch {
      // Out of memory, or of fds for the relay's thread: the connection cannot be carried.
      this.fail("no_target");
    }
  }

  /** The PROXY header for the target: the client and what it dialled (the listener asked for local addresses). */
  private proxyHeader(version: "v1" | "v2"): Buffer | undefined {
    const { clientAddress: address, clientPort: port, localAddress, localPort } = this;
    if (address === undefined || port === undefined || localAddress === undefined || localPort === undefined) return undefined;
    return (version === "v1" ? buildV1 : buildV2)({ address, port }, { address: localAddress, port: localPort });
  }

  connected(): void {
    const runtime = this.runtime!;
    const target = this.target!;
    this.carried = true;
    this.health.succeeded(target);
    runtime.open.connected(target);
    this.hooks.onConnected(runtime.app, target);
  }

  dialFailed(reason: DialFailure, code: string): void {
    // Given up meanwhile (shed, cut): its shutdown is on its way, and no other target is tried.
    if (this.finished || this.endReason !== "closed") return;
    const runtime = this.runtime!;
    // Another address of the same name first, as Node's connect would.
    if (this.addresses.length > 0 && reason !== "timeout") return this.dial(runtime.app, this.addresses.shift()!);
    this.targetFailed(runtime, reason === "timeout" ? { target: this.target!, reason } : { target: this.target!, reason, code });
  }

  private targetFailed(runtime: AppRuntime, f: ConnectFailure): void {
    this.addresses = [];
    this.health.failed(f.target);
    this.hooks.onUpstreamFailure(runtime.app, f);
    this.tryNext(runtime);
  }

  done(end: RelayEnd): void {
    this.id = undefined;
    this.relayed = end;
    if (this.endReason === "closed") this.endReason = end.reason;
    this.finish();
  }

  refuse(reason: "worker_limit" | "app_limit" | "client_limit" | "no_app"): void {
    this.fail(reason);
  }

  shutdown(): void {
    this.fail("shutdown");
  }

  shed(): void {
    this.fail("overload");
  }

  private fail(reason: EndReason): void {
    // Once carried, only the drain deadline ends it from here, as on the Node path.
    if (this.finished || (this.carried && reason !== "shutdown")) return;
    if (this.endReason === "closed") this.endReason = reason;
    // The relay closes the client; its done() finishes the connection.
    if (this.id !== undefined) return this.relay.shutdown(this.id);
    if (this.fd !== undefined) closeFd(this.fd);
    this.fd = undefined;
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    const target = this.carried ? this.target : undefined;
    // Before the hooks: once the access log has the line, the count no longer holds this connection.
    if (target) this.runtime?.open.closed(target);
    this.hooks.onFinished(
      {
        app: this.runtime?.app.name,
        clientAddress: this.clientAddress,
        clientPort: this.clientPort,
        localPort: this.localPort,
        target: target?.label,
        bytesIn: this.relayed?.bytesIn ?? 0,
        bytesOut: this.relayed?.bytesOut ?? 0,
        startedAt: this.startedAt,
        durationMs: Date.now() - this.startedAt,
        end: this.endReason,
      },
      this,
    );
  }
}
