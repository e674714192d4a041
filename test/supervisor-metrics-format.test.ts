// The supervisor's own metric registry (supervisor/operations/prom/) against
// prom-client, which it replaced: the same text for the same families, the
// same aggregation of workers' JSON, the same JSON handed to a successor, the
// same default process metrics. prom-client stays a dev dependency for this.
import test from "ava";
import fc from "fast-check";
import { AggregatorRegistry, Counter as PromCounter, Gauge as PromGauge, Histogram as PromHistogram, Registry as PromRegistry, collectDefaultMetrics } from "prom-client";
import { aggregate } from "../supervisor/operations/prom/aggregate.js";
import type { Family } from "../supervisor/operations/prom/family.js";
import { Counter, Gauge, Histogram } from "../supervisor/operations/prom/instruments.js";
import { registerProcessMetrics } from "../supervisor/operations/prom/process-metrics.js";
import { Registry } from "../supervisor/operations/prom/registry.js";
import { registerRuntimeMetrics } from "../supervisor/operations/prom/runtime-metrics.js";
import { CONTENT_TYPE, renderText } from "../supervisor/operations/prom/text.js";

type PromSnapshot = Parameters<typeof AggregatorRegistry.aggregate>[0];

/** prom-client's aggregation and rendering of the same snapshots. */
const promRender = (snapshots: Family[][]): Promise<string> => AggregatorRegistry.aggregate(snapshots as unknown as PromSnapshot).metrics();

/** prom-client's aggregation read back as JSON: what totals() sends a successor. */
const promAggregateJson = (snapshots: Family[][]): unknown[] =>
  AggregatorRegistry.aggregate(snapshots as unknown as PromSnapshot)
    .getMetricsAsArray()
    .map((m) => (m as unknown as { get(): unknown }).get());

const labelValue = fc.oneof(fc.constantFrom("web", "a\"b", "back\\slash", "new\nline", "", "+Inf", "0.5"), fc.constantFrom(0.001, 1, 5));
const value = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.double({ noNaN: false }), fc.constantFrom(0.1, 0.2, Infinity, -Infinity, NaN));
const sample = fc.record(
  {
    value,
    labels: fc.dictionary(fc.constantFrom("app", "le", "reason", "target"), labelValue, { maxKeys: 3 }),
    metricName: fc.constantFrom("switchyard_x_bucket", "switchyard_x_sum", "switchyard_x_count"),
  },
  { requiredKeys: ["value", "labels"] },
);
const family: fc.Arbitrary<Family> = fc.record({
  help: fc.constantFrom("Connections, per app", "with \\ and\nnewline", "x"),
  name: fc.constantFrom("switchyard_x", "switchyard_y_total", "switchyard_z"),
  type: fc.constantFrom("counter" as const, "gauge" as const, "histogram" as const),
  values: fc.array(sample, { maxLength: 6 }),
  aggregator: fc.constantFrom("sum" as const, "min" as const, "max" as const, "average" as const, "first" as const, "omit" as const),
});
/** Snapshots as workers send them: each name at most once per snapshot. */
const snapshots = fc.array(fc.uniqueArray(family, { selector: (f) => f.name, maxLength: 3 }), { maxLength: 4 });

test("aggregated workers' families render as prom-client rendered them, byte for byte", async (t) => {
  await fc.assert(
    fc.asyncProperty(snapshots, async (s) => {
      t.is(renderText(aggregate(s)), await promRender(s));
    }),
    { numRuns: 300 },
  );
});

test("aggregation gives prom-client's JSON: what a successor and an older supervisor read", (t) => {
  fc.assert(
    fc.property(snapshots, (s) => {
      t.is(JSON.stringify(aggregate(s)), JSON.stringify(promAggregateJson(s)));
    }),
    { numRuns: 300 },
  );
});

test("an aggregator that is none fails the render as it did", (t) => {
  const bad = [[{ help: "h", name: "switchyard_x", type: "counter", values: [], aggregator: "median" }]] as unknown as Family[][];
  t.throws(() => aggregate(bad), { message: "'median' is not a defined aggregator." });
});

test("counters, gauges and histograms export and render as prom-client's", async (t) => {
  const ours = new Registry();
  const theirs = new PromRegistry();
  const c = ours.add(new Counter({ name: "switchyard_c_total", help: "c", labelNames: ["result", "app"] }));
  const pc = new PromCounter({ name: "switchyard_c_total", help: "c", labelNames: ["result", "app"], registers: [theirs] });
  const plain = ours.add(new Counter({ name: "switchyard_plain_total", help: "plain" }));
  const pplain = new PromCounter({ name: "switchyard_plain_total", help: "plain", registers: [theirs] });
  const g = ours.add(new Gauge({ name: "switchyard_g", help: "g", labelNames: ["state"] }));
  const pg = new PromGauge({ name: "switchyard_g", help: "g", labelNames: ["state"], registers: [theirs] });
  const h = ours.add(new Histogram({ name: "switchyard_h_seconds", help: "h", buckets: [0.05, 0.1, 1, 30] }));
  const ph = new PromHistogram({ name: "switchyard_h_seconds", help: "h", buckets: [0.05, 0.1, 1, 30], registers: [theirs] });
  const hl = ours.add(new Histogram({ name: "switchyard_hl_seconds", help: "hl", labelNames: ["kind"], buckets: [0.001, 0.01] }));
  const phl = new PromHistogram({ name: "switchyard_hl_seconds", help: "hl", labelNames: ["kind"], buckets: [0.001, 0.01], registers: [theirs] });

  for (const [labels, n] of [[{ result: "success" }, 0], [{ app: "web", result: "failure" }, 2], [{ result: "failure", app: "web" }, 1], [{ result: "success" }, 3]] as const) {
    c.inc(labels, n);
    pc.inc(labels, n);
  }
  c.remove({ result: "success" });
  pc.remove({ result: "success" });
  plain.inc({}, 0.1);
  plain.inc({}, 0.2);
  pplain.inc(0.1);
  pplain.inc(0.2);
  for (const s of ["starting", "serving", "draining"]) {
    g.set({ state: s }, 0);
    pg.set({ state: s }, 0);
  }
  g.inc({ state: "serving" }, 2);
  pg.inc({ state: "serving" }, 2);
  g.set({ state: "starting" }, 7);
  pg.set({ state: "starting" }, 7);
  for (const v of [0.01, 0.05, 0.7, 31, 2]) {
    h.observe(v);
    ph.observe(v);
  }
  for (const [kind, v] of [["minor", 0.0005], ["major", 0.02], ["minor", 0.005]] as const) {
    hl.observe(v, { kind });
    phl.observe({ kind }, v);
  }
  t.is(renderText(ours.families()), await theirs.metrics());
  t.is(CONTENT_TYPE, theirs.contentType);
  // What totals() hands a successor: the own families aggregated alone.
  t.is(JSON.stringify(aggregate([ours.families()])), JSON.stringify(promAggregateJson([(await theirs.getMetricsAsJSON()) as unknown as Family[]])));
});

/** A scrape with every value replaced, and the samples whose presence depends on the moment left out. */
function shape(text: string): string {
  return text
    .split("\n")
    .filter((l) => !/^nodejs_(gc_duration_seconds|active_(resources|handles|requests))[{_ ]/.test(l))
    .map((l) => (l.startsWith("#") ? l : l.replace(/ \S+$/, " V")))
    .join("\n");
}

test("the default process metrics are prom-client's, less the three *_total gauges promtool rejects", async (t) => {
  const ours = new Registry();
  registerProcessMetrics(ours);
  registerRuntimeMetrics(ours, { eventLoopResolutionMs: 100 });
  const theirs = new PromRegistry();
  collectDefaultMetrics({ register: theirs, eventLoopMonitoringPrecision: 100 });
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) theirs.removeSingleMetric(name);
  // Twice: the event-loop lag gauge shows at the second scrape what the first measured.
  for (let i = 0; i < 2; i++) {
    const [a, b] = [renderText(ours.families()), await theirs.metrics()];
    t.is(shape(a), shape(b));
    await new Promise((r) => setTimeout(r, 150));
  }
});
