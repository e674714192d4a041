import { Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from "prom-client";
import type { AppPlan, Target } from "../config/plan.js";
import type { ConnectionRecord } from "./proxy.js";
import type { ConnectFailure } from "./connect.js";

/**
 * This worker's share of the proxy metrics. The supervisor collects every
 * worker's registry as JSON and sums them (prom-client's aggregator), so each
 * metric declares how it combines across workers.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly accepted = new Counter({ name: "switchyard_connections_total", help: "Connections accepted, per app", labelNames: ["app"], registers: [this.registry] });
  private readonly active = new Gauge({ name: "switchyard_connections_active", help: "Connections open now, per app", labelNames: ["app"], registers: [this.registry] });
  private readonly errors = new Counter({ name: "switchyard_connection_errors_total", help: "Connections that ended in an error, per app and reason", labelNames: ["app", "reason"], registers: [this.registry] });
  private readonly upstreamFailures = new Counter({ name: "switchyard_upstream_connect_failures_total", help: "Failed connection attempts to a target", labelNames: ["app", "target"], registers: [this.registry] });
  private readonly bytes = new Counter({ name: "switchyard_bytes_total", help: "Bytes carried, per app; direction in is client to target", labelNames: ["app", "direction"], registers: [this.registry] });
  private readonly duration = new Histogram({
    name: "switchyard_connection_duration_seconds",
    help: "Lifetime of finished connections",
    labelNames: ["app"],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600],
    registers: [this.registry],
  });
  private readonly targetUp = new Gauge({
    name: "switchyard_target_up",
    help: "1 when the last attempt to reach the target succeeded (or none failed yet), else 0",
    labelNames: ["app", "target"],
    registers: [this.registry],
    aggregator: "min",
  });

  constructor(apps: readonly AppPlan[]) {
    for (const app of apps) {
      this.accepted.inc({ app: app.name }, 0);
      this.active.set({ app: app.name }, 0);
      for (const t of app.targets) this.targetUp.set({ app: app.name, target: t.label }, 1);
    }
  }

  connectionAccepted(app: string): void {
    this.accepted.inc({ app });
    this.active.inc({ app });
  }

  upstreamFailed(app: AppPlan, f: ConnectFailure): void {
    this.upstreamFailures.inc({ app: app.name, target: f.target.label });
    this.targetUp.set({ app: app.name, target: f.target.label }, 0);
  }

  upstreamConnected(app: AppPlan, target: Target): void {
    this.targetUp.set({ app: app.name, target: target.label }, 1);
  }

  connectionFinished(r: ConnectionRecord): void {
    const app = r.app ?? "";
    if (r.app !== undefined) this.active.dec({ app });
    if (r.end !== "closed") this.errors.inc({ app, reason: r.end });
    this.bytes.inc({ app, direction: "in" }, r.bytesIn);
    this.bytes.inc({ app, direction: "out" }, r.bytesOut);
    this.duration.observe({ app }, r.durationMs / 1000);
  }

  async snapshot(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return this.registry.getMetricsAsJSON();
  }
}
