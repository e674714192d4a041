/**
 * The supervisor's side of a worker's health check: a "health-check" message
 * on the worker's channel, answered by a "health" message with the same seq.
 * One check in flight at a time; an answer that comes after its check timed
 * out is ignored.
 */
export class HealthProbe {
  private seq = 0;
  private pending: { seq: number; resolve(serving: boolean): void; timer: NodeJS.Timeout } | undefined;

  constructor(private readonly sendCheck: (seq: number) => boolean) {}

  /** Resolves true if the worker answers "serving" within `timeoutMs`; false otherwise. */
  check(timeoutMs: number): Promise<boolean> {
    this.cancel();
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(seq, false), timeoutMs);
      this.pending = { seq, resolve, timer };
      if (!this.sendCheck(seq)) this.settle(seq, false);
    });
  }

  answer(seq: number, serving: boolean): void {
    this.settle(seq, serving);
  }

  /** Ends the check in flight, if any, as failed (the worker exited). */
  cancel(): void {
    if (this.pending) this.settle(this.pending.seq, false);
  }

  private settle(seq: number, serving: boolean): void {
    const p = this.pending;
    if (!p || p.seq !== seq) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(serving);
  }
}
