// bench/results.json: the medians behind every ratio the report and the chart
// show, per party, as plain numbers, so that anyone can recompute the ratios
// (goals.ts says how). A figure that was not measured in the run, or does not
// apply to the party (the direct party's CPU, HAProxy's spares), is left out.
import fs from "node:fs";
import type { BenchOptions } from "./options.js";
import type { Metric, Recorder } from "./record.js";
import type { NodeBaseline } from "./measure/node-baseline.js";
import { steadyMetrics } from "./measure/steady.js";
import { latencyMetrics } from "./measure/reload-latency.js";
import { reloadLoadMetrics } from "./measure/reload-load.js";
import { reloadCpuMetrics } from "./measure/reload-cpu.js";
import { MiB } from "./measure/rss.js";

export const FIGURE_KEYS = [
  "steady_new_conn_rps",
  "keepalive_rps",
  "keepalive_p99_ms",
  "bulk_1stream_gbps",
  "reload_latency_ms",
  "reload_1s_rps",
  "reload_100ms_rps",
  "cpu_per_reload_ms",
  "cpu_per_conn_us",
  "rss_anon_idle_mib",
  "rss_peak_keepalive_mib",
  "processes_idle",
] as const;
export type FigureKey = (typeof FIGURE_KEYS)[number];
export type Figures = Partial<Record<FigureKey, number>>;

export interface Results {
  parties: Record<string, Figures>;
  /** CPU of one `node -e 0`, ms: a reload's CPU is set against workers × this. */
  node_bare_start_cpu_ms?: number;
  /** RssAnon of an idle `node`, MiB: rss_anon_idle_mib (per process) is set against this. */
  node_bare_idle_rss_anon_mib?: number;
  /** switchyard's worker processes (HAProxy's threads): the worker processes a switchyard reload starts. */
  workers: number;
  quick: boolean;
  generated: string;
}

/** Where each figure comes from; rss_anon_idle_mib is per process (processes_idle of them). */
function sources(o: BenchOptions): Record<FigureKey, Metric | undefined> {
  const s = steadyMetrics;
  const underLoad = (ms: number) => (o.reloadIntervalsMs.includes(ms) ? reloadLoadMetrics(ms, o.reloadLoadSeconds).rps : undefined);
  return {
    steady_new_conn_rps: s.ccRps,
    keepalive_rps: s.kaRps,
    keepalive_p99_ms: s.kaP99,
    bulk_1stream_gbps: s.iperf1,
    reload_latency_ms: latencyMetrics.median,
    reload_1s_rps: underLoad(1000),
    reload_100ms_rps: underLoad(100),
    cpu_per_reload_ms: reloadCpuMetrics.perReload,
    cpu_per_conn_us: s.ccCpu,
    rss_anon_idle_mib: s.anonPerProcess,
    rss_peak_keepalive_mib: s.rssLoad,
    processes_idle: s.processes,
  };
}

/** Six significant digits: the medians are not that precise, and the file stays readable. */
const round = (x: number) => Number(x.toPrecision(6));

export function buildResults(rec: Recorder, o: BenchOptions, parties: readonly string[], baseline: NodeBaseline, startedAt: Date): Results {
  const from = sources(o);
  const out: Results = { parties: {}, workers: o.workers, quick: o.quick, generated: startedAt.toISOString() };
  for (const party of parties) {
    const figures: Figures = {};
    for (const key of FIGURE_KEYS) {
      const m = from[key];
      const v = m ? rec.median(m, party) : NaN;
      if (Number.isFinite(v)) figures[key] = round(v);
    }
    out.parties[party] = figures;
  }
  if (baseline.startCpuMs.length) out.node_bare_start_cpu_ms = round(baseline.startCpu());
  if (baseline.idleRssAnon.length) out.node_bare_idle_rss_anon_mib = round(baseline.idleAnon() / MiB);
  return out;
}

export function writeResults(file: string, r: Results): void {
  fs.writeFileSync(file, JSON.stringify(r, null, 2) + "\n");
}
