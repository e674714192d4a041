import { Counter } from "./prom/instruments.js";
import type { Registry } from "./prom/registry.js";
import type { Logger } from "../../common/log.js";

/**
 * Counts the clients an endpoint turned away, by reason, in a metric, and
 * logs them without letting a flood flood the log: the first rejection after
 * a quiet spell is logged at once, later ones are summed into one line per
 * interval. An operator learns that (and why) clients are refused, not each one.
 */
export class Rejections {
  private readonly counter: Counter;
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly event: string,
    registry: Registry,
    metric: { name: string; help: string },
    reasons: string[],
    private readonly limits: Record<string, number>,
    private readonly intervalMs = 10_000,
  ) {
    this.counter = registry.add(new Counter({ ...metric, labelNames: ["reason"] }));
    // Every reason scrapes as 0 from the start, so a rate() sees the first rejection.
    for (const reason of reasons) this.counter.inc({ reason }, 0);
  }

  add(reason: string): void {
    this.counter.inc({ reason });
    this.pending.set(reason, (this.pending.get(reason) ?? 0) + 1);
    if (this.timer) return;
    this.flush();
    this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.pending.size === 0) return;
      this.flush();
      this.schedule();
    }, this.intervalMs).unref();
  }

  private flush(): void {
    this.log.warn({ event: this.event, rejected: Object.fromEntries(this.pending), limits: this.limits });
    this.pending = new Map();
  }
}
