// CPU one reload costs, at idle: the supervisor (HAProxy's master) and every
// process it runs, those that exited meanwhile included (cputime.ts), from the
// trigger until the party is quiet again: the new workers up, the old ones
// gone, and whatever it starts after the cut-over (switchyard's spares for the
// next reload) up and settled too. The party's idle CPU over the same span is
// taken off. One unmeasured reload first: the first one may start what later
// ones find running. Reported: the median over `samples` reloads in a row.
import { metric, median, type Recorder } from "../record.js";
import type { Party } from "../parties/party.js";
import type { Variant } from "../layout.js";
import { treeCpu } from "../cputime.js";
import { sleep } from "../procs.js";

const S = "CPU time per reload, at idle (/proc: utime + stime of the supervisor or master and every process it starts, exited ones included)";
export const reloadCpuMetrics = {
  perReload: metric(S, "one reload", "ms", 1),
  vsNode: metric(S, "one reload / (worker processes it starts × bare `node -e 0`)", "x", 2, false),
  started: metric(S, "processes started per reload (seen)", "count", 1, false),
  window: metric(S, "trigger → quiet again", "ms", 0, false),
  idle: metric(S, "idle CPU of the party (taken off each reload)", "ms/s", 2, false),
};
const m = reloadCpuMetrics;

const POLL_MS = 50;
/**
 * Quiet: this long without a process coming or going, nor more CPU than idle
 * (plus a quarter, plus SLACK_MS): an idle switchyard worker samples its event
 * loop's delay 100 times a second, which wobbles by some ms per second.
 */
const QUIET_MS = 1000;
const SLACK_MS = 3;
const SETTLE_TIMEOUT_MS = 30_000;

interface Reading {
  at: number;
  ms: number;
  pids: number[];
}

const read = (party: Party): Reading => ({ at: performance.now(), ...treeCpu(() => party.pids()) });

/** The processes a reload starts: switchyard's --workers Node processes, HAProxy's one worker (its master re-executes itself, no new process). */
export function processesPerReload(party: string, workers: number): number {
  return party.startsWith("switchyard") ? workers : 1;
}

interface Settle {
  /** Reload count (succeeded + failed) that must be passed first. */
  reloadsAbove?: number;
  /** Processes the party must run again (spares included). */
  processes: number;
  idleMsPerS: number;
  /** Every pid seen meanwhile goes here. */
  seen?: Set<number>;
}

/**
 * Polls until the party is quiet and returns the reading at the start of the
 * quiet span, so the span itself adds nothing; undefined at the deadline.
 * Spares are asked for (GET /status costs the supervisor and workers some CPU)
 * only once the rest says quiet: a spare still starting means not yet.
 */
async function untilQuiet(party: Party, s: Settle): Promise<Reading | undefined> {
  const readings: Reading[] = [];
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const now = read(party);
    readings.push(now);
    for (const pid of now.pids) s.seen?.add(pid);
    const counts = party.reloadCounts?.();
    const reloaded = s.reloadsAbove === undefined || (counts !== undefined && counts.succeeded + counts.failed > s.reloadsAbove);
    let from: Reading | undefined;
    for (const r of readings) if (r.at <= now.at - QUIET_MS) from = r;
    if (reloaded && from) {
      const span = readings.slice(readings.indexOf(from));
      const steady = span.every((r) => r.pids.length === now.pids.length && r.pids.length >= s.processes);
      const calm = now.ms - from.ms <= (1.25 * s.idleMsPerS * (now.at - from.at)) / 1000 + SLACK_MS;
      if (steady && calm) {
        const spares = party.spares ? await party.spares().catch(() => []) : [];
        if (spares.every((x) => x.ready)) return from;
        // The status request itself cost CPU: the quiet span starts again after it.
        readings.length = 0;
      }
    }
    await sleep(POLL_MS);
  }
  return undefined;
}

/** How the figures were taken, once under the section's table. */
export function explainReloadCpu(rec: Recorder, samples: number): void {
  rec.text(
    S,
    `per reload: from the trigger until the party is quiet again (${QUIET_MS / 1000} s with no process coming or going and no more CPU than idle, spares ready), the party's idle CPU over that span taken off; processes that exited count through their parent's cutime + cstime; one unmeasured reload first, then the median of ${samples} in a row`,
  );
}

export async function reloadCpu(rec: Recorder, party: Party, samples: number): Promise<void> {
  if (!party.reload || !party.reloadCounts) return;
  for (const x of Object.values(m)) rec.declare(x);
  const fail = (why: string) => rec.note(m.perReload, party.name, why);
  const reloads = () => party.reloadCounts!().succeeded + party.reloadCounts!().failed;
  let variant: Variant = 0;
  const trigger = async () => {
    variant = variant === 0 ? 1 : 0;
    await party.whenReloadable?.();
    const before = reloads();
    const t0 = read(party);
    await party.reload!(variant);
    return { before, t0 };
  };

  // Start-up, then the unmeasured reload, each until quiet (idle unknown yet: a generous rate).
  const loose: Settle = { processes: 1, idleMsPerS: 20 };
  if (!(await untilQuiet(party, loose))) return fail(`not quiet within ${SETTLE_TIMEOUT_MS / 1000} s of start-up`);
  const warm = await trigger();
  if (!(await untilQuiet(party, { ...loose, reloadsAbove: warm.before }))) return fail(`first reload not quiet within ${SETTLE_TIMEOUT_MS / 1000} s`);

  // The idle rate over a quiet stretch, and what "all running" means from now on.
  const a = read(party);
  await sleep(2000);
  const b = read(party);
  const idleMsPerS = Math.max(0, ((b.ms - a.ms) * 1000) / (b.at - a.at));
  const processes = b.pids.length;
  rec.add(m.idle, party.name, idleMsPerS);

  const costs: number[] = [];
  const windows: number[] = [];
  const started: number[] = [];
  for (let i = 0; i < samples; i++) {
    const { before, t0 } = await trigger();
    const seen = new Set<number>();
    const end = await untilQuiet(party, { reloadsAbove: before, processes, idleMsPerS, seen });
    if (!end) {
      fail(`reload ${i + 1} not quiet within ${SETTLE_TIMEOUT_MS / 1000} s`);
      break;
    }
    if (reloads() > before && party.reloadCounts().failed > 0) return fail("a reload failed");
    costs.push(end.ms - t0.ms - (idleMsPerS * (end.at - t0.at)) / 1000);
    windows.push(end.at - t0.at);
    started.push([...seen].filter((pid) => !t0.pids.includes(pid)).length);
  }
  if (costs.length === 0) return;
  rec.add(m.perReload, party.name, median(costs));
  rec.add(m.started, party.name, median(started));
  rec.add(m.window, party.name, median(windows));
  console.log(`  ${party.name}: CPU per reload ${costs.map((c) => c.toFixed(1)).join(", ")} ms; idle ${idleMsPerS.toFixed(2)} ms/s; ${processes} processes`);
}
