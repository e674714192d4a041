import type { Target } from "../config/plan.js";

const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;

interface State {
  failures: number;
  downUntil: number;
}

/**
 * Passive health: a target that refused or timed out is skipped for a backoff
 * that doubles with each consecutive failure; one success clears it.
 */
export class TargetHealth {
  private readonly states = new Map<string, State>();
  constructor(private readonly now: () => number = Date.now) {}

  isUp = (t: Target): boolean => {
    const s = this.states.get(t.label);
    return s === undefined || s.downUntil <= this.now();
  };

  failed(t: Target): void {
    const s = this.states.get(t.label) ?? { failures: 0, downUntil: 0 };
    s.failures += 1;
    s.downUntil = this.now() + Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (s.failures - 1));
    this.states.set(t.label, s);
  }

  succeeded(t: Target): void {
    this.states.delete(t.label);
  }
}
