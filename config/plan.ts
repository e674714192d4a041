// The validated, normalised form of a config file. The supervisor builds it,
// hands it to every worker, and both sides read it; nothing else crosses over.

import type { BALANCERS, PROXY_PROTOCOL_VERSIONS } from "./schema.js";

export interface Target {
  /**
   * The address as written in the config, without options: "tcp-echo.fly.dev:5001"
   * or "[::1]:80". It names the target in /status, metrics and logs.
   */
  label: string;
  /** Host name or IP address, without IPv6 brackets. */
  host: string;
  port: number;
  /** Relative share of connections, 1-256 ("host:port weight=N"); 1 unless given. */
  weight: number;
}

/** Active health checks of an app's targets, run by the supervisor (supervisor/health/). */
export interface HealthCheckPlan {
  /** Milliseconds from the start of one check of a target to the start of the next. */
  intervalMs: number;
  /** Milliseconds a check (name lookup and TCP connect) may take before it counts as failed. */
  timeoutMs: number;
  /** Consecutive successes that bring a down target up. */
  rise: number;
  /** Consecutive failures that take an up target down. */
  fall: number;
}

/** Name of a balancing strategy: one of config/schema.ts's BALANCERS. */
export type Balance = (typeof BALANCERS)[number];

export interface AppPlan {
  name: string;
  /** Position in Plan.apps; stable only within one Plan. */
  index: number;
  /** Every port, ranges expanded, sorted ascending, no duplicates. */
  ports: number[];
  /**
   * Destination addresses or prefixes this app answers on, in CIDR form
   * ("0.0.0.0/0", "::/0", "127.0.0.1/32"). Default: all local addresses of both families.
   */
  addresses: string[];
  targets: Target[];
  /** Name of the balancing strategy (worker/balancers/). */
  balance: Balance;
  /** Milliseconds a worker waits for a target to accept before it tries the next. */
  connectTimeoutMs: number;
  /** Milliseconds without a byte either way after which a connection is closed; null: never. */
  idleTimeoutMs: number | null;
  /** Active health checks; null: none, only passive health (failed connects). */
  healthCheck: HealthCheckPlan | null;
  /** Open connections of the app across every worker at most; null: no limit. */
  maxConnections: number | null;
  /** Open connections of the app from one client address, across every worker, at most; null: no limit. */
  maxConnectionsPerClient: number | null;
  /** The PROXY protocol header written first to each target connection; null: none. */
  proxyProtocol: (typeof PROXY_PROTOCOL_VERSIONS)[number] | null;
  /** Clients come through a balancer that sends a PROXY protocol header (v1 or v2), required first. */
  acceptProxyProtocol: boolean;
  /**
   * TLS server names this app takes on the ports it shares, lowercased ("*.example.com":
   * any name under it); empty: none (on a shared port, the default app).
   */
  serverNames: string[];
}

export interface Plan {
  apps: AppPlan[];
}
