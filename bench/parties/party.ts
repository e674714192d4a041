// What every party (direct, HAProxy, switchyard in each steering mode) offers
// the measurements.
import type { Service, Variant } from "../layout.js";

export interface WorkerShare {
  pid: number;
  accepted: number;
}

/** A worker process switchyard keeps started ahead of the next reload. */
export interface Spare {
  pid: number;
  ready: boolean;
}

export interface ReloadCounts {
  succeeded: number;
  failed: number;
}

export interface Party {
  /** Column label in the report. */
  readonly name: string;
  /** Whether there is a proxy in the path (false for direct). */
  readonly proxied: boolean;
  /** performance.now() when the proxy process was spawned by the last start(). */
  readonly spawnedAt: number;
  /** Where clients connect for each service. */
  port(service: Service): number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Every process of the proxy (supervisor and workers, master and worker). */
  pids(): number[];
  /** Switches to config variant A (0) or B (1) and triggers a reload; resolves once triggered, not done. */
  reload?(variant: Variant): Promise<void>;
  /** Resolves when a reload triggered now would start at once (HAProxy's master after a re-exec). */
  whenReloadable?(): Promise<void>;
  /** Reloads the proxy reported as done, from its log. */
  reloadCounts?(): ReloadCounts;
  /** Connections accepted so far by each worker of the serving generation. */
  workerShares?(): Promise<WorkerShare[]>;
  /** Spare worker processes started ahead of the next reload ([] when the proxy keeps none). */
  spares?(): Promise<Spare[]>;
}

/** How every proxy party is configured: same workers, same ports, optional scale app. */
export interface PartySpec {
  workers: number;
  /** HAProxy's maxconn: above the idle-connection test's count. */
  maxconn: number;
  /** Ports of the scale app (0: none). */
  scalePorts: number;
  /** switchyard's --max-connections (per worker); absent: none. */
  maxConnectionsPerWorker?: number;
}

/** Thrown by start() when a party cannot run here; the report shows the reason. */
export class Unavailable extends Error {}
