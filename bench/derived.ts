// Rows computed from other rows' medians once every round is in: the rate
// under reloads against the party's own steady rate, a reload's CPU against
// bare `node -e 0` starts, idle RssAnon per process against an idle `node`.
// The same quotients goals.ts takes from results.json for the chart.
import type { BenchOptions } from "./options.js";
import type { Recorder } from "./record.js";
import type { NodeBaseline } from "./measure/node-baseline.js";
import { steadyMetrics } from "./measure/steady.js";
import { reloadLoadMetrics } from "./measure/reload-load.js";
import { processesPerReload, reloadCpuMetrics } from "./measure/reload-cpu.js";
import { MiB } from "./measure/rss.js";

export function derive(rec: Recorder, o: BenchOptions, parties: readonly string[], baseline: NodeBaseline): void {
  const put = (m: Parameters<Recorder["add"]>[0], party: string, v: number) => {
    if (Number.isFinite(v)) rec.add(m, party, v);
  };
  for (const p of parties) {
    const steady = rec.median(steadyMetrics.ccRps, p);
    for (const ms of o.reloadIntervalsMs) {
      const m = reloadLoadMetrics(ms, o.reloadLoadSeconds);
      put(m.vsSteady, p, rec.median(m.rps, p) / steady);
    }
    put(reloadCpuMetrics.vsNode, p, rec.median(reloadCpuMetrics.perReload, p) / (processesPerReload(p, o.workers) * baseline.startCpu()));
    put(steadyMetrics.anonVsNode, p, rec.median(steadyMetrics.anonPerProcess, p) / (baseline.idleAnon() / MiB));
  }
  // `--only reload`: the rows stay, empty, and say why.
  if (parties.some((p) => Number.isFinite(rec.median(steadyMetrics.ccRps, p)))) return;
  for (const ms of o.reloadIntervalsMs) {
    const m = reloadLoadMetrics(ms, o.reloadLoadSeconds);
    if (parties.some((p) => Number.isFinite(rec.median(m.rps, p)))) rec.text(m.rps.section, "no ratio to the steady rate: the steady section did not run");
  }
}
