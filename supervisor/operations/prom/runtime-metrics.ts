// The nodejs_* metrics prom-client's collectDefaultMetrics exposed, same
// names, help, types, label sets and values: event-loop delay, active
// resources, handles and requests, V8 heap, version, GC pauses. Not the three
// *_total gauges of resources, handles and requests: promtool rejects a gauge
// named _total, and /metrics never had them.
import v8 from "node:v8";
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { Gauge, Histogram } from "./instruments.js";
import type { Registry } from "./registry.js";

/** How often the event-loop delay is sampled. */
export interface RuntimeMetricsOptions {
  eventLoopResolutionMs: number;
}

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
};

/** How many of each, by constructor name (handles, requests). */
function byConstructor(list: unknown[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of list as ({ constructor?: { name: string } } | null)[]) {
    if (!item || item.constructor === undefined) continue;
    out.set(item.constructor.name, (out.get(item.constructor.name) ?? 0) + 1);
  }
  return out;
}

function countsByType(g: Gauge, counts: Map<string, number>): void {
  g.reset();
  for (const [type, n] of counts) g.set({ type }, n);
}

function registerEventLoopDelay(registry: Registry, resolution: number): void {
  const delay = monitorEventLoopDelay({ resolution });
  delay.enable();
  const names = ["min", "max", "mean", "stddev", "p50", "p90", "p99"] as const;
  const help: Record<(typeof names)[number], string> = {
    min: "The minimum recorded event loop delay.",
    max: "The maximum recorded event loop delay.",
    mean: "The mean of the recorded event loop delays.",
    stddev: "The standard deviation of the recorded event loop delays.",
    p50: "The 50th percentile of the recorded event loop delays.",
    p90: "The 90th percentile of the recorded event loop delays.",
    p99: "The 99th percentile of the recorded event loop delays.",
  };
  const gauges = names.map((n) => new Gauge({ name: `nodejs_eventloop_lag_${n}_seconds`, help: help[n], aggregator: n === "min" || n === "max" ? n : "average" }));
  registry.add(
    new Gauge({
      name: "nodejs_eventloop_lag_seconds",
      help: "Lag of event loop in seconds.",
      aggregator: "average",
      // The lag is how long a setImmediate queued now waits: known after this scrape, shown by the next.
      collect(lag) {
        const start = process.hrtime.bigint();
        setImmediate(() => lag.set({}, Number(process.hrtime.bigint() - start) / 1e9));
        const values = [delay.min, delay.max, delay.mean, delay.stddev, delay.percentile(50), delay.percentile(90), delay.percentile(99)];
        gauges.forEach((g, i) => g.set({}, values[i]! / 1e9));
        delay.reset();
      },
    }),
  );
  for (const g of gauges) registry.add(g);
}

export function registerRuntimeMetrics(registry: Registry, o: RuntimeMetricsOptions): void {
  registerEventLoopDelay(registry, o.eventLoopResolutionMs);
  registry.add(
    new Gauge({
      name: "nodejs_active_resources",
      help: "Number of active resources that are currently keeping the event loop alive, grouped by async resource type.",
      labelNames: ["type"],
      collect: (g) => countsByType(g, byConstructorName(process.getActiveResourcesInfo())),
    }),
  );
  // Undocumented, but what prom-client read; guarded as it guarded them.
  const internals = process as unknown as { _getActiveHandles?: () => unknown[]; _getActiveRequests?: () => unknown[] };
  if (typeof internals._getActiveHandles === "function") {
    registry.add(
      new Gauge({
        name: "nodejs_active_handles",
        help: "Number of active libuv handles grouped by handle type. Every handle type is C++ class name.",
        labelNames: ["type"],
        collect: (g) => countsByType(g, byConstructor(internals._getActiveHandles!())),
      }),
    );
  }
  if (typeof internals._getActiveRequests === "function") {
    registry.add(
      new Gauge({
        name: "nodejs_active_requests",
        help: "Number of active libuv requests grouped by request type. Every request type is C++ class name.",
        labelNames: ["type"],
        collect: (g) => countsByType(g, byConstructor(internals._getActiveRequests!())),
      }),
    );
  }
  registerHeap(registry);
  const [major, minor, patch] = process.version.slice(1).split(".").map(Number);
  registry.add(
    new Gauge({
      name: "nodejs_version_info",
      help: "Node.js version info.",
      labelNames: ["version", "major", "minor", "patch"],
      aggregator: "first",
      collect: (g) => g.set({ version: process.version, major: major!, minor: minor!, patch: patch! }, 1),
    }),
  );
  registerGc(registry);
}

/** Resources are named by strings already; counted in order of first appearance. */
function byConstructorName(names: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of names) out.set(n, (out.get(n) ?? 0) + 1);
  return out;
}

function registerHeap(registry: Registry): void {
  const used = new Gauge({ name: "nodejs_heap_size_used_bytes", help: "Process heap size used from Node.js in bytes." });
  const external = new Gauge({ name: "nodejs_external_memory_bytes", help: "Node.js external memory size in bytes." });
  registry.add(
    new Gauge({
      name: "nodejs_heap_size_total_bytes",
      help: "Process heap size from Node.js in bytes.",
      collect(total) {
        const m = process.memoryUsage();
        total.set({}, m.heapTotal);
        used.set({}, m.heapUsed);
        external.set({}, m.external);
      },
    }),
  );
  registry.add(used);
  registry.add(external);
  const spaceHelp = (what: string): string => `Process heap space size ${what} from Node.js in bytes.`;
  const spaceUsed = new Gauge({ name: "nodejs_heap_space_size_used_bytes", help: spaceHelp("used"), labelNames: ["space"] });
  const available = new Gauge({ name: "nodejs_heap_space_size_available_bytes", help: spaceHelp("available"), labelNames: ["space"] });
  registry.add(
    new Gauge({
      name: "nodejs_heap_space_size_total_bytes",
      help: spaceHelp("total"),
      labelNames: ["space"],
      collect(total) {
        for (const s of v8.getHeapSpaceStatistics()) {
          // "new_large_object_space" → "new_large_object"
          const space = s.space_name.substring(0, s.space_name.indexOf("_space"));
          total.set({ space }, s.space_size);
          spaceUsed.set({ space }, s.space_used_size);
          available.set({ space }, s.space_available_size);
        }
      },
    }),
  );
  registry.add(spaceUsed);
  registry.add(available);
}

function registerGc(registry: Registry): void {
  const pauses = registry.add(
    new Histogram({ name: "nodejs_gc_duration_seconds", help: "Garbage collection duration by kind, one of major, minor, incremental or weakcb.", labelNames: ["kind"], buckets: [0.001, 0.01, 0.1, 1, 2, 5] }),
  );
  // As prom-client did: the first entry of each batch the observer is handed (batches are of one, as a rule).
  const observer = new PerformanceObserver((list) => {
    const entry = list.getEntries()[0];
    if (!entry) return;
    const kind = GC_KINDS[(entry as unknown as { detail: { kind: number } }).detail.kind] as string;
    pauses.observe(entry.duration / 1000, { kind });
  });
  observer.observe({ entryTypes: ["gc"] });
}
