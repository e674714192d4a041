import type { Supervisor } from "../supervisor.js";

/** Sum of a gauge or counter over its labels. */
function sumGauge(snapshot: unknown, name: string): number {
  const metric = (snapshot as { name: string; values: { value: number }[] }[]).find((m) => m.name === name);
  return metric ? metric.values.reduce((a, v) => a + v.value, 0) : 0;
}

function targetHealth(snapshots: unknown[], app: string): Map<string, boolean> {
  const up = new Map<string, boolean>();
  for (const s of snapshots) {
    const metric = (s as { name: string; values: { value: number; labels: Record<string, string> }[] }[]).find((m) => m.name === "switchyard_target_up");
    for (const v of metric?.values ?? []) {
      if (v.labels.app !== app) continue;
      const target = v.labels.target!;
      up.set(target, (up.get(target) ?? true) && v.value === 1);
    }
  }
  return up;
}

/** The JSON of GET /status and `ctl status`. */
export async function buildStatus(sup: Supervisor): Promise<Record<string, unknown>> {
  const snapshots = await sup.metrics.workerSnapshots();
  const current = sup.pool.current;
  const steering = sup.provider.status();
  const steered = sup.provider.steeredCounts();
  const currentSnapshots = current ? current.workers().flatMap((w) => (snapshots.has(w) ? [snapshots.get(w)] : [])) : [];
  const generations = sup.pool.generations().map((g) => {
    const workers = g.workers().map((w) => ({
      index: w.index,
      pid: w.pid ?? null,
      state: w.state,
      connections: snapshots.has(w) ? sumGauge(snapshots.get(w), "switchyard_connections_active") : null,
      /** Connections this worker accepted since it started: shows how evenly the kernel spreads them. */
      accepted: snapshots.has(w) ? sumGauge(snapshots.get(w), "switchyard_connections_total") : null,
    }));
    return {
      number: g.number,
      // Stopping drains the serving generation too; the pool keeps calling it current.
      state: sup.pool.isStopping && g.state === "serving" ? "draining" : g.state,
      startedAt: new Date(g.startedAt).toISOString(),
      connections: workers.reduce((a, w) => a + (w.connections ?? 0), 0),
      workers,
    };
  });
  return {
    healthy: sup.pool.healthy(),
    pid: process.pid,
    version: sup.version,
    startedAt: new Date(sup.startedAt).toISOString(),
    uptimeSeconds: Math.round((Date.now() - sup.startedAt) / 1000),
    upgrading: sup.upgrading,
    generation: current?.number ?? null,
    config: sup.options.config,
    steering: { ...steering, apps: steering.apps.map((a) => ({ ...a, ...(steered ? { steered: steered.get(a.name) ?? 0 } : {}) })) },
    reloading: sup.reloads.busy,
    lastReload: sup.lastReload ?? null,
    generations,
    /** Every worker process, of whichever generation, flat: for scripts that only count or list them. */
    workers: generations.flatMap((g) => g.workers.map((w) => ({ generation: g.number, generationState: g.state, ...w }))),
    /** Worker processes started ahead, waiting for a reload or a replacement to take them (--spare-workers). */
    spares: sup.spares.list(),
    apps: (current?.plan.apps ?? []).map((app) => {
      const health = targetHealth(currentSnapshots, app.name);
      return {
        name: app.name,
        ports: app.ports,
        addresses: app.addresses,
        // With MaxConnections: the limit, and the connections open now over every worker.
        ...(app.maxConnections === null ? {} : { maxConnections: app.maxConnections, openConnections: sup.counters.openConnections(app.name) ?? 0 }),
        targets: app.targets.map((t) => {
          // `up`: the active checks' verdict when the app has a HealthCheck, else
          // the passive view (no current worker's last attempt failed).
          const checked = sup.prober.statusOf(app.name, t.label);
          if (checked === undefined) return { target: t.label, up: health.get(t.label) ?? true };
          return {
            target: t.label,
            up: checked.up,
            checkedAt: checked.checkedAt === undefined ? null : new Date(checked.checkedAt).toISOString(),
            ...(checked.reason !== undefined ? { reason: checked.reason } : {}),
          };
        }),
      };
    }),
  };
}
