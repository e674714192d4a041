/**
 * At most `limit` checks at once, the rest waiting in arrival order: a
 * config with thousands of targets, or many black-holed ones, costs a bounded
 * number of sockets and lookups, and checks only start late, never pile up.
 */
export class CheckSlots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Runs `job` once a slot is free; the slot is held until the promise `job` returns settles. */
  run(job: () => Promise<void>): void {
    const start = (): void => {
      this.running += 1;
      void job().finally(() => {
        this.running -= 1;
        this.waiting.shift()?.();
      });
    };
    if (this.running < this.limit) start();
    else this.waiting.push(start);
  }

  /** Forgets the checks not yet started. */
  clear(): void {
    this.waiting.length = 0;
  }
}
