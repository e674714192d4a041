import type net from "node:net";
import type { AppPlan, Target } from "../config/plan.js";
import type { TargetHealth } from "./target-health.js";
import { unmapIPv4, type AppRuntime, type Carried, type EndReason, type ProxyHooks } from "./connection.js";
import { connectFirst, type AbortDial, type ConnectFailure } from "./connect.js";
import { PAUSED_CHECK_MS, resetUnread, stillSending } from "./socket-checks.js";
import { handOverToRelay } from "./relay-handover.js";
import type { Relay, RelayEnd } from "../native/relay.js";
import { buildV1, buildV2, parseProxyHeader, PROXY_HEADER_MAX_BYTES, type Endpoint } from "./proxy-protocol.js";
import { CLIENT_HELLO_MAX_BYTES, parseClientHello } from "./client-hello.js";

/** Segments a PROXY header or a ClientHello may come in before the client is taken for a stalling one. */
const FRONT_MAX_CHUNKS = 64;

/** How long a client of a port shared by server name has to send its whole ClientHello. */
export const CLIENT_HELLO_TIMEOUT_MS = 5000;

/** How long a client of an AcceptProxyProtocol app has to send its whole PROXY header. */
export const PROXY_HEADER_TIMEOUT_MS = 5000;

/**
 * Carries one client connection Node accepted to a target: both directions
 * piped with backpressure, a half-close passed on, an error on either side
 * closes both; or, once connected, handed to the relay thread. The path for
 * what must read the client's first bytes in JavaScript (a PROXY header, a
 * ClientHello) and for --data-path js; the rest takes RelayedConnection.
 */
export class ProxiedConnection implements Carried {
  private upstream: net.Socket | undefined;
  private finished = false;
  private endReason: EndReason = "closed";
  /** The target this connection holds a place in `open` for, from connect to finish. */
  private target: Target | undefined;
  /** While a target is being dialled: gives the dial up. */
  private abortDial: AbortDial | undefined;
  readonly startedAt = Date.now();
  private clientAddress: string | undefined;
  private clientPort: number | undefined;
  private localPort: number | undefined;
  /** What the client dialled, as a balancer's PROXY header said (AcceptProxyProtocol). */
  private dialled: Endpoint | undefined;
  /** Carried by the native relay: its id there; the Node sockets are gone. */
  private relayId: number | undefined;
  /** What the relay reported at the end: the bytes each way. */
  private relayed: RelayEnd | undefined;

  constructor(
    private readonly client: net.Socket,
    private runtime: AppRuntime | undefined,
    private readonly health: TargetHealth,
    private readonly hooks: ProxyHooks,
  ) {
    if (hooks.wantsAddresses) {
      // Read now: once the client is gone, getpeername fails.
      this.clientAddress = unmapIPv4(client.remoteAddress);
      this.clientPort = client.remotePort;
      this.localPort = client.localPort;
    }
    // TCP_NODELAY and keepalive come from the listening socket (supervisor/listeners/proxy-listen-options.ts).
    client.on("error", () => this.fail("client_error"));
    client.on("close", () => this.maybeFinish());
  }

  start(): void {
    const runtime = this.runtime;
    if (!runtime) return this.fail("no_app");
    const { app, balancer, lookup, isUp } = runtime;
    // Until the target answers, the client's bytes wait in its socket buffer.
    this.client.pause();
    const client = balancer.usesClient ? (this.clientAddress ?? unmapIPv4(this.client.remoteAddress)) : undefined;
    this.abortDial = connectFirst(
      balancer.order(isUp, client),
      app.connectTimeoutMs,
      lookup,
      (f) => {
        this.health.failed(f.target);
        this.hooks.onUpstreamFailure(app, f);
      },
      () => this.finished || this.client.destroyed,
      (connected) => {
        this.abortDial = undefined;
        if (!connected) return this.fail(this.finished || this.client.destroyed ? this.endReason : "no_target");
        this.attach(app, connected.socket, connected.target);
      },
    );
  }

  /** The client's address as far as limits and hashing go: a balancer's PROXY header's, else the socket's peer. */
  get clientAddressSeen(): string | undefined {
    return this.clientAddress ?? unmapIPv4(this.client.remoteAddress);
  }

  /**
   * Reads what comes first on the client's stream, at most `maxBytes` within
   * `timeoutMs`, until `parse` decides: "done" with how many bytes to take off
   * the front (the rest is put back for the target, in order), or "fail" (the
   * connection closes as `reason`).
   */
  private readFront(maxBytes: number, timeoutMs: number, reason: EndReason, parse: (buf: Buffer) => { state: "incomplete" } | { state: "fail" } | { state: "done"; take: number; then: () => void }): void {
    const client = this.client;
    let buf: Buffer = Buffer.alloc(0);
    const finish = (r: { state: "fail" } | { state: "done"; take: number; then: () => void }): void => {
      clearTimeout(timer);
      client.removeListener("data", onData);
      client.pause();
      if (r.state === "fail") return this.fail(reason);
      if (buf.length > r.take) client.unshift(buf.subarray(r.take));
      r.then();
    };
    let chunks = 0;
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      // Each arrival re-parses from the start: a client dribbling bytes one segment at a
      // time would make that quadratic. Real clients send a header or hello in a few.
      if (++chunks > FRONT_MAX_CHUNKS) return finish({ state: "fail" });
      const r = parse(buf);
      if (r.state === "incomplete" && buf.length < maxBytes) return;
      finish(r.state === "incomplete" ? { state: "fail" } : r);
    };
    const timer = setTimeout(() => finish({ state: "fail" }), timeoutMs);
    client.once("close", () => clearTimeout(timer));
    client.on("data", onData);
    client.resume();
  }

  /**
   * AcceptProxyProtocol: takes the balancer's PROXY header off the front of the
   * stream, at most PROXY_HEADER_MAX_BYTES within PROXY_HEADER_TIMEOUT_MS; its
   * addresses become this connection's client and destination everywhere
   * (limits, source hash, access log, the header written to the target). What
   * follows the header is left in the socket. Anything else closes the
   * connection ("proxy_header"); `admit` runs only after a valid one.
   */
  readProxyHeader(admit: () => void): void {
    this.readFront(PROXY_HEADER_MAX_BYTES, PROXY_HEADER_TIMEOUT_MS, "proxy_header", (buf) => {
      const r = parseProxyHeader(buf);
      if (r.state !== "done") return r.state === "incomplete" ? r : { state: "fail" };
      const header = r.header;
      return {
        state: "done",
        take: r.length,
        then: () => {
          if (header.command === "proxy") {
            this.clientAddress = unmapIPv4(header.source.address);
            this.clientPort = header.source.port;
            this.localPort = header.destination.port;
            this.dialled = header.destination;
          }
          admit();
        },
      };
    });
  }

  /**
   * Routing by TLS server name: reads the ClientHello (across as many segments
   * as it takes, at most CLIENT_HELLO_MAX_BYTES within CLIENT_HELLO_TIMEOUT_MS)
   * without taking any of it: every byte goes to the target as it came. Bytes
   * that are not a ClientHello close the connection ("client_hello").
   */
  readClientHello(route: (serverName: string | undefined) => void): void {
    this.readFront(CLIENT_HELLO_MAX_BYTES, CLIENT_HELLO_TIMEOUT_MS, "client_hello", (buf) => {
      const r = parseClientHello(buf);
      if (r.state === "incomplete") return r;
      if (r.state !== "done") return { state: "fail" };
      return { state: "done", take: 0, then: () => route(r.serverName) };
    });
  }

  /** The app chosen after the connection was accepted (by server name): before start(). */
  assign(runtime: AppRuntime): void {
    this.runtime = runtime;
  }

  /** The PROXY header for the target: the client (as a balancer said, or the peer) and what it dialled. */
  private proxyHeaderFor(version: "v1" | "v2"): Buffer | undefined {
    const address = this.clientAddressSeen;
    const port = this.clientPort ?? this.client.remotePort;
    const dialled = this.dialled ?? (this.client.localAddress !== undefined && this.client.localPort !== undefined ? { address: this.client.localAddress, port: this.client.localPort } : undefined);
    if (address === undefined || port === undefined || dialled === undefined) return undefined;
    return (version === "v1" ? buildV1 : buildV2)({ address, port }, dialled);
  }

  private attach(app: AppPlan, socket: net.Socket, target: Target): void {
    let header: Buffer | undefined;
    if (app.proxyProtocol !== null) {
      header = this.proxyHeaderFor(app.proxyProtocol);
      // No addresses: the client is already gone.
      if (header === undefined) {
        socket.destroy();
        return this.fail("client_error");
      }
    }
    this.health.succeeded(target);
    this.upstream = socket;
    this.target = target;
    this.runtime?.open.connected(target);
    this.hooks.onConnected(app, target);
    if (this.hooks.relay !== null && this.handToRelay(this.hooks.relay, app, socket, header)) return;
    // First on the wire, before any byte of the client's.
    if (header !== undefined) socket.write(header);
    socket.on("error", () => this.fail("target_error"));
    socket.on("close", () => this.maybeFinish());
    this.watchWhilePaused(this.client, "client_error");
    this.watchWhilePaused(socket, "target_error");
    // pipe() ends the destination when the source ends: that is the half-close.
    this.client.pipe(socket);
    socket.pipe(this.client);
    this.client.resume();
    if (app.idleTimeoutMs !== null) this.watchIdle(app.idleTimeoutMs, socket);
  }

  /** The native relay takes both sockets (worker/relay-handover.ts); false: Node streams carry them. */
  private handToRelay(relay: Relay, app: AppPlan, upstream: net.Socket, header: Buffer | undefined): boolean {
    this.relayId = handOverToRelay(relay, this.client, upstream, { idleTimeoutMs: app.idleTimeoutMs, header }, (end) => this.relayEnded(end));
    return this.relayId !== undefined;
  }

  private relayEnded(end: RelayEnd): void {
    this.relayed = end;
    if (this.endReason === "closed") this.endReason = end.reason;
    this.relayId = undefined;
    this.maybeFinish();
  }

  /**
   * pipe() pauses a leg while the other cannot take more; a peer that resets
   * meanwhile would go unnoticed until the other side moved again, holding
   * both legs (and, with a target that never reads, for ever). One timer per
   * paused leg asks the kernel; it runs only while the leg is paused.
   */
  private watchWhilePaused(leg: net.Socket, reason: EndReason): void {
    let timer: NodeJS.Timeout | undefined;
    const check = (): void => {
      if (resetUnread(leg)) this.fail(reason);
      else timer = setTimeout(check, PAUSED_CHECK_MS);
    };
    leg.on("pause", () => {
      clearTimeout(timer);
      timer = setTimeout(check, PAUSED_CHECK_MS);
    });
    leg.on("resume", () => clearTimeout(timer));
    leg.once("close", () => clearTimeout(timer));
  }

  /**
   * Node restarts a socket's timer when it reads and when a write completes, and
   * every byte either way is read from or written to the client socket. Under
   * backpressure, though, the client is paused (upload to a slow target) or a
   * write to it waits for a slow reader, and no timer moves for a while. So
   * when it fires, bytes still on their way to either peer (in Node's queue or
   * the kernel's) mean a slow reader, not silence: wait again. A live reader
   * that stopped for good (it still answers TCP's window probes, so keepalive
   * cannot tell either) keeps its connection until its generation drains.
   */
  private watchIdle(ms: number, upstream: net.Socket): void {
    this.client.on("timeout", () => {
      if (stillSending(this.client) || stillSending(upstream)) this.client.setTimeout(ms);
      else this.fail("idle_timeout");
    });
    this.client.setTimeout(ms);
  }

  /** Closed at once, never carried: the worker or the app is at its limit. */
  refuse(reason: "worker_limit" | "app_limit" | "client_limit" | "no_app"): void {
    this.fail(reason);
  }

  /** Cut off at the drain deadline. */
  shutdown(): void {
    this.fail("shutdown");
  }

  /** Whether it still waits for a target: accepted, not yet carried. */
  get dialling(): boolean {
    return this.abortDial !== undefined;
  }

  /** Closed before it is carried: the worker is shedding load (worker/overload-guard.ts). */
  shed(): void {
    this.fail("overload");
  }

  private fail(reason: EndReason): void {
    if (this.finished) return;
    if (this.relayId !== undefined) {
      // Only the drain deadline ends a relayed connection from here; its sockets are the relay's.
      if (reason === "shutdown") this.hooks.relay!.shutdown(this.relayId);
      return;
    }
    if (this.endReason === "closed") this.endReason = reason;
    this.client.destroy();
    this.abortDial?.();
    this.upstream?.destroy();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.finished) return;
    // Relayed: the Node sockets' closing is not the connection's end; the relay's report is.
    if (this.relayId !== undefined) return;
    const upstream = this.upstream;
    if (!this.client.destroyed) {
      // The target is gone: the client gets its FIN (pipe() sent it) and closes when done.
      if (upstream?.destroyed && !this.client.writableEnded) this.client.end();
      return;
    }
    if (upstream && !upstream.destroyed) {
      // The client is fully closed: nothing the target still sends can be delivered.
      upstream.destroy();
      return;
    }
    this.finished = true;
    // The client left while its target was dialled: the dial's fd is freed now, not at ConnectTimeoutMs.
    this.abortDial?.();
    // Before the hooks: once the access log has the line, the count no longer holds this connection.
    if (this.target) this.runtime?.open.closed(this.target);
    this.hooks.onFinished(
      {
        app: this.runtime?.app.name,
        clientAddress: this.clientAddress,
        clientPort: this.clientPort,
        localPort: this.localPort,
        target: this.target?.label,
        bytesIn: this.relayed?.bytesIn ?? this.upstream?.bytesWritten ?? 0,
        bytesOut: this.relayed?.bytesOut ?? this.client.bytesWritten,
        startedAt: this.startedAt,
        durationMs: Date.now() - this.startedAt,
        end: this.endReason,
      },
      this,
    );
  }
}
