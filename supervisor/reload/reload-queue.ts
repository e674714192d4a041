import type { ConfigProblem } from "../../common/errors.js";

export type ReloadResult =
  | { ok: true; generation: number; durationMs: number; source: string; at: string }
  | { ok: false; code: string; message: string; problems?: ConfigProblem[]; durationMs: number; source: string; at: string };

/**
 * Runs one reload at a time. Requests that arrive while one runs are
 * coalesced into a single further run, which reads the latest file; every
 * caller waiting on it gets that run's result.
 */
export class ReloadQueue {
  private running = false;
  private pending: { sources: string[]; waiters: ((r: ReloadResult) => void)[] } | undefined;

  constructor(private readonly run: (source: string) => Promise<ReloadResult>) {}

  get busy(): boolean {
    return this.running;
  }

  request(source: string): Promise<ReloadResult> {
    return new Promise((resolve) => {
      if (!this.pending) this.pending = { sources: [], waiters: [] };
      this.pending.sources.push(source);
      this.pending.waiters.push(resolve);
      if (!this.running) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.running = true;
    while (this.pending) {
      const batch = this.pending;
      this.pending = undefined;
      const source = [...new Set(batch.sources)].join(",");
      const result = await this.run(source);
      for (const w of batch.waiters) w(result);
    }
    this.running = false;
  }
}
