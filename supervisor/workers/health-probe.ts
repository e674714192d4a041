/**
 * The supervisor's side of a worker's health check: a "health-check" message
 * on the worker's channel, answered by a "health" message with the same seq.
 * One check in flight at a time; an answer that comes after its check timed
 * out is ignored.
 */
export type HealthAnswer = "serving" | "not-serving" | "no-answer";

export class HealthProbe {
  private seq = 0;
  private pending: { seq: number; resolve(answer: HealthAnswer): void; timer: NodeJS.Timeout } | undefined;

  constructor(private readonly sendCheck: (seq: number) => boolean) {}

  /** Resolves with the worker's answer, or "no-answer" if none came within `timeoutMs` (or it cannot be asked). */
  check(timeoutMs: number): Promise<HealthAnswer> {
    this.cancel();
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(seq, "no-answer"), timeoutMs);
      this.pending = { seq, resolve, timer };
      if (!this.sendCheck(seq)) this.settle(seq, "no-answer");
    });
  }

  answer(seq: number, serving: boolean): void {
    this.settle(seq, serving ? "serving" : "not-serving");
  }

  /** Ends the check in flight, if any, without an answer (the worker exited). */
  cancel(): void {
    if (this.pending) this.settle(this.pending.seq, "no-answer");
  }

  private settle(seq: number, answer: HealthAnswer): void {
    const p = this.pending;
    if (!p || p.seq !== seq) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(answer);
  }
}
