import type { TargetState } from "../common/messages.js";
import type { Target } from "../config/plan.js";

const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;

interface State {
  failures: number;
  downUntil: number;
}

/**
 * A target's health as this worker sees it, from two sources:
 * - passive: a target that refused or timed out is skipped for a backoff that
 *   doubles with each consecutive failure; one success clears it. Per target
 *   label: the same address is the same backend whichever app dials it.
 * - active: the supervisor's checks (only for apps with a HealthCheck), per app
 *   and target, as the supervisor last said.
 * A target is up only when both say so; one that is not goes to the end of the
 * order, never first, but is still tried when every target of the app is down.
 */
export class TargetHealth {
  private readonly states = new Map<string, State>();
  /** App name → labels of its targets the checks see down. */
  private readonly checkedDown = new Map<string, Set<string>>();
  constructor(private readonly now: () => number = Date.now) {}

  isUp(app: string, t: Target): boolean {
    if (this.checkedDown.get(app)?.has(t.label)) return false;
    const s = this.states.get(t.label);
    return s === undefined || s.downUntil <= this.now();
  }

  /** The supervisor's checks: later states replace earlier ones. */
  checked(states: readonly TargetState[]): void {
    for (const s of states) {
      let down = this.checkedDown.get(s.app);
      if (s.up) {
        down?.delete(s.target);
        continue;
      }
      if (down === undefined) this.checkedDown.set(s.app, (down = new Set()));
      down.add(s.target);
    }
  }

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
