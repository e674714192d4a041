// The worker counts without prom-client and exports prom-client's JSON shape;
// the supervisor sums workers with prom-client's aggregator. These tests hold
// the export to what prom-client itself renders for the same observations.
import test from "ava";
import { AggregatorRegistry, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from "prom-client";
import { WorkerMetrics } from "../worker/metrics.js";
import { parseConfigText } from "../config/load.js";
import type { ConnectionRecord } from "../worker/connection.js";
import type { MetricFamily } from "../common/messages.js";

const plan = parseConfigText(JSON.stringify({ Apps: [{ Name: "web", Ports: [8080], Targets: ["127.0.0.1:9000", "127.0.0.1:9001"] }] }));
const web = plan.apps[0]!;
// Durations on, between and past the bucket bounds (seconds).
const DURATIONS = [0.0005, 0.001, 0.003, 0.05, 0.7, 4.2, 9999];

function record(durationSeconds: number, end: ConnectionRecord["end"] = "closed"): ConnectionRecord {
  return { app: "web", clientAddress: undefined, clientPort: undefined, localPort: 8080, target: "127.0.0.1:9000", bytesIn: 10, bytesOut: 20, startedAt: 0, durationMs: durationSeconds * 1000, end };
}

function workerWith(durations: number[]): WorkerMetrics {
  const m = new WorkerMetrics(plan.apps);
  for (const d of durations) {
    m.connectionAccepted("web");
    m.connectionFinished(record(d));
  }
  return m;
}

const render = (snapshots: MetricFamily[][]): Promise<string> =>
  AggregatorRegistry.aggregate(snapshots as unknown as MetricObjectWithValues<MetricValue<string>>[][]).metrics();

const lines = (text: string, prefix: string): string[] => text.split("\n").filter((l) => l.startsWith(prefix));

test("the duration histogram renders as prom-client's own, bucket by bucket", async (t) => {
  const reference = new Registry();
  const h = new Histogram({ name: "switchyard_connection_duration_seconds", help: "x", labelNames: ["app"], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600], registers: [reference] });
  for (const d of DURATIONS) h.observe({ app: "web" }, d);
  const expected = lines(await reference.metrics(), "switchyard_connection_duration_seconds_");
  const actual = lines(await render([workerWith(DURATIONS).snapshot()]), "switchyard_connection_duration_seconds_");
  t.is(actual.length, 15, actual.join("\n"));
  t.deepEqual(actual, expected);
});

test("two workers' counters, bytes and histograms add up; target_up takes the minimum", async (t) => {
  const a = workerWith(DURATIONS.slice(0, 3));
  const b = workerWith(DURATIONS.slice(3));
  b.upstreamFailed(web, { target: web.targets[1]!, reason: "refused", code: "ECONNREFUSED" });
  b.connectionAccepted("web");
  b.connectionFinished(record(0.002, "target_error"));
  const text = await render([a.snapshot(), b.snapshot()]);
  const total = DURATIONS.length + 1;
  t.true(text.includes(`switchyard_connections_total{app="web"} ${total}\n`), text);
  t.true(text.includes(`switchyard_connections_active{app="web"} 0\n`));
  t.true(text.includes(`switchyard_bytes_total{app="web",direction="in"} ${10 * total}\n`));
  t.true(text.includes(`switchyard_bytes_total{app="web",direction="out"} ${20 * total}\n`));
  t.true(text.includes(`switchyard_connection_duration_seconds_count{app="web"} ${total}\n`));
  t.true(text.includes(`switchyard_connection_duration_seconds_bucket{le="+Inf",app="web"} ${total}\n`));
  t.true(text.includes(`switchyard_connection_errors_total{app="web",reason="target_error"} 1\n`));
  t.true(text.includes(`switchyard_upstream_connect_failures_total{app="web",target="127.0.0.1:9001"} 1\n`));
  t.true(text.includes(`switchyard_target_up{app="web",target="127.0.0.1:9000"} 1\n`));
  t.true(text.includes(`switchyard_target_up{app="web",target="127.0.0.1:9001"} 0\n`), "one worker saw the target down");
});

test("an open connection is active until it finishes", async (t) => {
  const m = new WorkerMetrics(plan.apps);
  m.connectionAccepted("web");
  t.true((await render([m.snapshot()])).includes(`switchyard_connections_active{app="web"} 1\n`));
  m.connectionFinished(record(0.01));
  t.true((await render([m.snapshot()])).includes(`switchyard_connections_active{app="web"} 0\n`));
});
