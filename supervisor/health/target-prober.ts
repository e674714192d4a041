import type { Logger } from "../../common/log.js";
import type { TargetState } from "../../common/messages.js";
import type { HealthCheckPlan, Plan, Target } from "../../config/plan.js";
import { CheckSlots } from "./check-slots.js";
import { tcpCheck, type TcpCheck } from "./tcp-check.js";

/** Checks running at once, over every app; the rest wait their turn. */
const MAX_CONCURRENT_CHECKS = 64;

export interface ProberEvents {
  /** States that changed, to pass on to every worker. */
  onChange(states: TargetState[]): void;
  /** Every finished check, for switchyard_health_checks_total. */
  onCheck(app: string, target: string, ok: boolean): void;
  /** A target no longer checked (removed from the plan, or its app's HealthCheck gone). */
  onForget(app: string, target: string): void;
}

/** What /status shows of a checked target. */
export interface CheckedStatus {
  up: boolean;
  /** When its last check finished; undefined before the first. */
  checkedAt: number | undefined;
  /** Why its last check failed, while it is down. */
  reason: string | undefined;
}

interface Checked extends CheckedStatus {
  app: string;
  target: Target;
  check: HealthCheckPlan;
  /** Consecutive results that argue against the state: failures while up, successes while down. */
  streak: number;
  /** When it went down, for the target_up line. */
  downSince: number;
  timer: NodeJS.Timeout | undefined;
  /** Dropped from the plan: a check still running for it has no one to report to. */
  forgotten: boolean;
}

const keyOf = (app: string, label: string): string => `${app}\0${label}`;
const splitKey = (key: string): { app: string; target: string } => {
  const i = key.indexOf("\0");
  return { app: key.slice(0, i), target: key.slice(i + 1) };
};

/**
 * The one prober of the whole proxy: TCP connect checks of every target of
 * every app with a HealthCheck, in the supervisor, so that N workers do not
 * multiply the probes a target receives. Its verdicts reach the workers as
 * "target-states" messages (on each transition, and with every "start").
 *
 * A target keeps its state and counters across reloads as long as the new
 * plan has the same app name and target label. A new target starts up, with
 * no check done (HAProxy's `init-state fully-up`): down until proven up would
 * leave the targets a reload adds idle for Rise checks, while a dead one is
 * found out within Fall checks anyway, and passive health (a worker's failed
 * connect, then its backoff) covers it meanwhile.
 */
export class TargetProber {
  private readonly checked = new Map<string, Checked>();
  private readonly slots = new CheckSlots(MAX_CONCURRENT_CHECKS);
  private readonly stopping = new AbortController();

  constructor(
    private readonly events: ProberEvents,
    private readonly log: Logger,
    private readonly check: (host: string, port: number, timeoutMs: number, signal: AbortSignal) => TcpCheck = tcpCheck,
    private readonly random: () => number = Math.random,
  ) {}

  /** States a previous supervisor had found (an upgrade), for targets not checked here yet. */
  private inherited = new Map<string, boolean>();

  /** Takes over a previous supervisor's findings: its targets start up or down as it last saw them. */
  adopt(states: readonly TargetState[]): void {
    for (const s of states) this.inherited.set(keyOf(s.app, s.target), s.up);
  }

  /** Follows the serving plan: call once it serves (at start, after each cut-over). */
  setPlan(plan: Plan): void {
    if (this.stopping.signal.aborted) return;
    const kept = new Set<string>();
    for (const app of plan.apps) {
      if (app.healthCheck === null) continue;
      for (const target of app.targets) {
        const key = keyOf(app.name, target.label);
        kept.add(key);
        const s = this.checked.get(key);
        if (s !== undefined) {
          // Same label, same address; the new check settings apply from its next check.
          s.target = target;
          s.check = app.healthCheck;
          continue;
        }
        const fresh: Checked = { app: app.name, target, check: app.healthCheck, up: this.inherited.get(key) ?? true, checkedAt: undefined, reason: undefined, streak: 0, downSince: 0, timer: undefined, forgotten: false };
        this.checked.set(key, fresh);
        // Spread over one interval: thousands of targets are not all checked in the same instant.
        this.schedule(fresh, Math.floor(this.random() * app.healthCheck.intervalMs));
      }
    }
    for (const [key, s] of this.checked) {
      if (kept.has(key)) continue;
      this.forget(s);
      this.checked.delete(key);
    }
  }

  /** Every checked target's state: what a worker starting now needs. */
  states(): TargetState[] {
    const checked = [...this.checked.values()].map((s) => ({ app: s.app, target: s.target.label, up: s.up }));
    // Before the first plan, what was inherited: the first generation's workers start with it.
    if (this.checked.size > 0 || this.inherited.size === 0) return checked;
    return [...this.inherited].map(([key, up]) => ({ ...splitKey(key), up }));
  }

  /** Undefined when the app's targets are not checked. */
  statusOf(app: string, label: string): CheckedStatus | undefined {
    const s = this.checked.get(keyOf(app, label));
    return s && { up: s.up, checkedAt: s.checkedAt, reason: s.up ? undefined : s.reason };
  }

  /** Clears every timer and ends the checks under way. */
  stop(): void {
    this.stopping.abort();
    this.slots.clear();
    for (const s of this.checked.values()) {
      s.forgotten = true;
      clearTimeout(s.timer);
    }
    this.checked.clear();
  }

  private forget(s: Checked): void {
    s.forgotten = true;
    clearTimeout(s.timer);
    this.events.onForget(s.app, s.target.label);
  }

  private schedule(s: Checked, delayMs: number): void {
    s.timer = setTimeout(() => {
      const due = Date.now();
      this.slots.run(() => this.run(s, due));
    }, delayMs);
  }

  private async run(s: Checked, due: number): Promise<void> {
    if (s.forgotten) return;
    const { host, port } = s.target;
    const c = this.check(host, port, s.check.timeoutMs, this.stopping.signal);
    const r = await c.result;
    if (!s.forgotten) {
      this.record(s, r.ok, r.ok ? undefined : r.reason);
      // One check of a target at a time: the next starts one interval after this
      // one was due, or at once if it took longer (a TimeoutMs above IntervalMs).
      this.schedule(s, Math.max(0, due + s.check.intervalMs - Date.now()));
    }
    await c.finished;
  }

  private record(s: Checked, ok: boolean, reason: string | undefined): void {
    const now = Date.now();
    s.checkedAt = now;
    this.events.onCheck(s.app, s.target.label, ok);
    if (ok === s.up) {
      s.streak = 0;
      if (!ok) s.reason = reason;
      return;
    }
    s.streak += 1;
    if (!ok) s.reason = reason;
    if (s.streak < (s.up ? s.check.fall : s.check.rise)) return;
    s.streak = 0;
    s.up = ok;
    if (ok) {
      s.reason = undefined;
      this.log.info({ event: "target_up", app: s.app, target: s.target.label, checks: s.check.rise, down_ms: now - s.downSince });
    } else {
      s.downSince = now;
      this.log.warn({ event: "target_down", app: s.app, target: s.target.label, reason, checks: s.check.fall });
    }
    this.events.onChange([{ app: s.app, target: s.target.label, up: ok }]);
  }
}
