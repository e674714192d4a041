import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import type { Logger } from "../common/log.js";
import { countOverloadEpisode } from "./metrics.js";

/** How often the loop's delay is judged. */
const WINDOW_MS = 500;

export interface Sheddable {
  readonly accepting: boolean;
  pauseAccepting(): void;
  resumeAccepting(): Promise<void>;
}

/**
 * Load shedding: when this worker's event loop falls behind (the 99th
 * percentile of its delay over a window past `lagMs`), it stops accepting
 * until a window is back under it. New connections then wait in the kernel's
 * queue for the other workers, instead of each one adding to the latency of
 * every connection this worker already carries. One log line per episode.
 */
export class OverloadGuard {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  private timer: NodeJS.Timeout | undefined;
  private episode: { since: number; worstMs: number } | undefined;

  constructor(
    private readonly target: Sheddable,
    private readonly lagMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.histogram.enable();
    this.timer = setInterval(() => this.judge(), WINDOW_MS).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }

  private judge(): void {
    const p99Ms = this.histogram.percentile(99) / 1e6;
    this.histogram.reset();
    if (p99Ms > this.lagMs) {
      if (this.episode === undefined) {
        this.episode = { since: Date.now(), worstMs: p99Ms };
        countOverloadEpisode();
        this.log.warn({ event: "overload_shedding", loop_delay_p99_ms: Math.round(p99Ms), threshold_ms: this.lagMs });
      }
      this.episode.worstMs = Math.max(this.episode.worstMs, p99Ms);
      if (this.target.accepting) this.target.pauseAccepting();
      return;
    }
    if (this.episode === undefined) return;
    this.log.info({ event: "overload_recovered", duration_ms: Date.now() - this.episode.since, worst_loop_delay_p99_ms: Math.round(this.episode.worstMs) });
    this.episode = undefined;
    void this.target.resumeAccepting();
  }
}
