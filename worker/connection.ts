import type net from "node:net";
import type { AppPlan, Target } from "../config/plan.js";
import type { Balancer, OpenConnections } from "./balancers/index.js";
import type { ConnectFailure } from "./connect.js";
import type { Relay } from "../native/relay.js";

export type EndReason =
  | "closed" // both sides finished normally
  | "client_error"
  | "target_error"
  | "no_target" // every target refused or timed out
  | "no_app" // no app serves the dialled address and port
  | "idle_timeout" // no byte either way for the app's IdleTimeoutMs
  | "worker_limit" // the worker already carried --max-connections
  | "app_limit" // the app already had its MaxConnections open, over all workers
  | "client_limit" // this client address already had the app's MaxConnectionsPerClient open
  | "overload" // the worker was shedding load and could not connect it to a target in time
  | "proxy_header" // AcceptProxyProtocol: no valid PROXY header within its bounds
  | "client_hello" // a port shared by server name: no valid TLS ClientHello within its bounds
  | "shutdown"; // cut off at the drain deadline

/**
 * A dual-stack socket (the app socket in BPF mode) reports IPv4 clients as
 * `::ffff:a.b.c.d`; the access log says what the client dialled from: a.b.c.d.
 */
export function unmapIPv4(address: string | undefined): string | undefined {
  return address !== undefined && address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

export interface ConnectionRecord {
  app: string | undefined;
  clientAddress: string | undefined;
  clientPort: number | undefined;
  localPort: number | undefined;
  target: string | undefined;
  /** Bytes from client to target. */
  bytesIn: number;
  /** Bytes from target to client. */
  bytesOut: number;
  startedAt: number;
  durationMs: number;
  end: EndReason;
}

export interface ProxyHooks {
  /**
   * Whether records carry the client's address and the local port. Reading
   * them costs a getpeername and a getsockname per connection, worth paying
   * only when something (the access log) uses them.
   */
  readonly wantsAddresses: boolean;
  /**
   * The addon's relay thread (--data-path native): it accepts, connects and
   * carries the bytes (worker/relayed-connection.ts), or carries a connection
   * Node accepted and connected (worker/relay-handover.ts); null: Node streams
   * for everything (--data-path js).
   */
  readonly relay: Relay | null;
  onUpstreamFailure(app: AppPlan, f: ConnectFailure): void;
  onConnected(app: AppPlan, target: Target): void;
  onFinished(record: ConnectionRecord, conn: Carried): void;
}

export interface AppRuntime {
  app: AppPlan;
  balancer: Balancer;
  /** This worker's open connections per target of the app, which some balancers read. */
  open: OpenConnections;
  /** Resolves the names among the app's targets (the worker's DnsCache). */
  lookup: net.LookupFunction;
  /** Whether a target of this app looks up, passively and to the supervisor's checks (TargetHealth). */
  isUp: (t: Target) => boolean;
}

/**
 * A client connection as the Acceptor sees it, whichever way it is carried:
 * Node sockets (worker/proxy.ts) or the relay's thread from accept on
 * (worker/relayed-connection.ts).
 */
export interface Carried {
  readonly startedAt: number;
  /** Accepted and started, waiting for a target to answer. */
  readonly dialling: boolean;
  /** The client's address as far as limits and hashing go: a balancer's PROXY header's, else the socket's peer. */
  readonly clientAddressSeen: string | undefined;
  /** Carried to a target: the balancer's order, each tried in turn. */
  start(): void;
  /** Closed at once, never carried: the worker or the app is at its limit. */
  refuse(reason: "worker_limit" | "app_limit" | "client_limit" | "no_app"): void;
  /** Cut off at the drain deadline. */
  shutdown(): void;
  /** Closed before it is carried: the worker is shedding load (worker/overload-guard.ts). */
  shed(): void;
}
