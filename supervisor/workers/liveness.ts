import type { HealthProbe } from "./health-probe.js";

/**
 * A serving worker is health-checked every LIVENESS_INTERVAL_MS; one that
 * has not answered LIVENESS_MISSES checks in a row (stopped, hung in a loop,
 * swapped out: about 10 s without a turn of its event loop) is declared
 * unresponsive, to be killed and, like a crashed one, replaced: its clients
 * are stalled anyway, and the kernel queue is served by the others meanwhile.
 * Generous, so that a worker merely slowed by an overloaded machine is not
 * killed and its load piled on the others.
 */
export const LIVENESS_INTERVAL_MS = 2000;
export const LIVENESS_MISSES = 5;

export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly health: HealthProbe,
    private readonly onUnresponsive: (missedChecks: number) => void,
  ) {}

  start(): void {
    let misses = 0;
    const probe = async (): Promise<void> => {
      // Any answer is a turn of the worker's event loop: only silence counts as a miss.
      const answered = (await this.health.check(LIVENESS_INTERVAL_MS)) !== "no-answer";
      if (this.stopped) return;
      misses = answered ? 0 : misses + 1;
      if (misses < LIVENESS_MISSES) {
        this.timer = setTimeout(() => void probe(), answered ? LIVENESS_INTERVAL_MS : 0);
        return;
      }
      this.onUnresponsive(misses);
    };
    this.timer = setTimeout(() => void probe(), LIVENESS_INTERVAL_MS);
  }

  /** No more checks: the worker drains, exits, or was found unresponsive. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
