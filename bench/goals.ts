// switchyard's goals, as ratios computed from results.json alone: the chart
// and the report's goal table draw them, and anyone can recompute them from
// the file. Most are against HAProxy (`nbthread` = switchyard's workers); the
// reloads under load are against the party's own steady rate, a reload's CPU
// against bare `node -e 0` starts, idle memory per process against an idle `node`.
import type { FigureKey, Results } from "./results-json.js";
import { processesPerReload } from "./measure/reload-cpu.js";

export interface Goal {
  figure: string;
  /** What the ratio divides by. */
  against: string;
  better: "higher" | "lower";
  /** The ratio to reach: at least (higher) or at most (lower). */
  goal: number;
  ratio(r: Results, party: string): number | undefined;
}

const div = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);

function vsHaproxy(figure: string, key: FigureKey, better: Goal["better"], goal: number): Goal {
  return { figure, against: "HAProxy", better, goal, ratio: (r, p) => div(r.parties[p]?.[key], r.parties.haproxy?.[key]) };
}

function vsOwnSteady(figure: string, key: FigureKey, goal: number): Goal {
  return { figure, against: "its own steady rate", better: "higher", goal, ratio: (r, p) => div(r.parties[p]?.[key], r.parties[p]?.steady_new_conn_rps) };
}

export const GOALS: Goal[] = [
  vsHaproxy("reload latency, trigger → new config", "reload_latency_ms", "lower", 1.5),
  vsOwnSteady("requests/s, reloading every 1 s", "reload_1s_rps", 0.85),
  vsOwnSteady("requests/s, reloading every 100 ms", "reload_100ms_rps", 0.6),
  {
    figure: "CPU per reload, all processes",
    against: "workers × bare `node -e 0`",
    better: "lower",
    goal: 1.3,
    ratio: (r, p) => div(r.parties[p]?.cpu_per_reload_ms, r.node_bare_start_cpu_ms === undefined ? undefined : processesPerReload(p, r.workers) * r.node_bare_start_cpu_ms),
  },
  vsHaproxy("new connections/s (Connection: close)", "steady_new_conn_rps", "higher", 0.8),
  vsHaproxy("keep-alive requests/s", "keepalive_rps", "higher", 1.0),
  vsHaproxy("keep-alive p99 latency", "keepalive_p99_ms", "lower", 1.3),
  vsHaproxy("bulk throughput, 1 stream", "bulk_1stream_gbps", "higher", 1.5),
  vsHaproxy("CPU per proxied connection", "cpu_per_conn_us", "lower", 1.5),
  {
    figure: "idle RssAnon per process",
    against: "a bare idle `node`",
    better: "lower",
    goal: 1.5,
    ratio: (r, p) => div(r.parties[p]?.rss_anon_idle_mib, r.node_bare_idle_rss_anon_mib),
  },
  vsHaproxy("peak RSS under keep-alive load", "rss_peak_keepalive_mib", "lower", 5),
];

export const meets = (g: Goal, ratio: number): boolean => (g.better === "higher" ? ratio >= g.goal : ratio <= g.goal);

/** The parties the goals are about. */
export const JUDGED = ["switchyard-ports", "switchyard-bpf"] as const;
