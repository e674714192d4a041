import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import type { Logger } from "../common/log.js";
import { countOverloadEpisode } from "./metrics.js";

/** How often the loop's delay is judged. */
const WINDOW_MS = 500;

/**
 * While shedding, how long an accepted connection may wait for its target
 * before it is closed: ten times the lag threshold, at least a second. A
 * healthy target on the same network connects in well under that.
 */
export function sheddingBoundMs(lagMs: number): number {
  return Math.max(1000, 10 * lagMs);
}

export interface Sheddable {
  readonly accepting: boolean;
  pauseAccepting(): void;
  resumeAccepting(): Promise<void>;
  /** Closes the connections accepted over `boundMs` ago that still wait for a target; how many. */
  shedWaiting(boundMs: number): number;
}

/**
 * Load shedding: when this worker's event loop falls behind (the 99th
 * percentile of its delay over a window past `lagMs`), it stops accepting
 * until a window is back under it. New connections then wait in the kernel's
 * queue for the other workers, instead of each one adding to the latency of
 * every connection this worker already carries; and the connections it has
 * accepted but could not connect to a target within sheddingBoundMs are
 * closed (end "overload") rather than served ever later. One log line per
 * episode, with what it shed.
 */
export class OverloadGuard {
  /**
   * Sampled at a tenth of the threshold (10 ms at least): finer says nothing
   * more about a 500 ms lag, and each sample wakes an idle worker up.
   */
  private readonly histogram: IntervalHistogram;
  private timer: NodeJS.Timeout | undefined;
  private episode: { since: number; worstMs: number; shed: number } | undefined;

  constructor(
    private readonly target: Sheddable,
    private readonly lagMs: number,
    private readonly log: Logger,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: Math.max(10, Math.floor(lagMs / 10)) });
  }

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
        this.episode = { since: Date.now(), worstMs: p99Ms, shed: 0 };
        countOverloadEpisode();
        this.log.warn({ event: "overload_shedding", loop_delay_p99_ms: Math.round(p99Ms), threshold_ms: this.lagMs });
      }
      this.episode.worstMs = Math.max(this.episode.worstMs, p99Ms);
      if (this.target.accepting) this.target.pauseAccepting();
      this.episode.shed += this.target.shedWaiting(sheddingBoundMs(this.lagMs));
      return;
    }
    if (this.episode === undefined) return;
    this.log.info({ event: "overload_recovered", duration_ms: Date.now() - this.episode.since, worst_loop_delay_p99_ms: Math.round(this.episode.worstMs), shed: this.episode.shed });
    this.episode = undefined;
    void this.target.resumeAccepting();
  }
}
