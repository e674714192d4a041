// The loop both socket targets share: one supervisor, fast-check generating
// cases until the time is up, a failing case shrunk while time remains, and
// the supervisor stopped whatever happens.
import fc from "fast-check";
import type { FuzzReport } from "./target.js";
import { startFuzzSupervisor, type FuzzSupervisor } from "./supervisor-process.js";

export type Check<T> = (s: FuzzSupervisor, input: T) => Promise<void>;

export async function explore<T>(opts: { timeLimitMs: number; seed?: number }, arb: fc.Arbitrary<T>, check: Check<T>): Promise<FuzzReport> {
  const started = Date.now();
  const s = await startFuzzSupervisor();
  try {
    // Startup counts against the budget; one case runs however slow the start was.
    const deadline = started + opts.timeLimitMs;
    let runs = 0;
    let dead = false;
    const reasons = new Map<unknown, string>();
    const details = await fc.check(
      fc.asyncProperty(arb, async (input) => {
        // Past the deadline, or with the supervisor gone, every case "passes": the
        // shrinking stops at once and keeps the failure already found.
        if (dead || (runs > 0 && Date.now() > deadline)) return;
        runs += 1;
        try {
          await check(s, input);
        } catch (err) {
          reasons.set(input, (err as Error).message);
          if (s.exitedWith() !== null) dead = true;
          throw err;
        }
      }),
      { seed: opts.seed, numRuns: 1_000_000, interruptAfterTimeLimit: Math.max(deadline - Date.now(), 200), endOnFailure: false },
    );
    if (!details.failed || details.counterexample === null) return { runs, failures: [] };
    const input = details.counterexample[0];
    const reason = reasons.get(input) ?? (details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance));
    return { runs, failures: [{ input, reason }] };
  } finally {
    await s.stop();
  }
}

/** One stored case against a fresh supervisor. */
export async function replayOne<T>(input: T, check: Check<T>): Promise<void> {
  const s = await startFuzzSupervisor();
  try {
    await check(s, input);
  } finally {
    await s.stop();
  }
}
