// Reloads under load: wrk with a new connection per request while the proxy is
// reloaded every `intervalMs`, alternating between config A and B (the web app's
// targets move between two pairs of nginx ports). Every error wrk sees counts.
import { metric, type Metric, type Recorder } from "../record.js";
import type { Party } from "../parties/party.js";
import { wrk } from "../tools/wrk.js";
import type { Variant } from "../layout.js";

const section = (intervalMs: number, seconds: number) => `Reloads under load: every ${intervalMs} ms for ${seconds} s (wrk, new connection per request, 64 connections)`;

export function reloadLoadMetrics(intervalMs: number, seconds: number) {
  const s = section(intervalMs, seconds);
  return {
    rps: metric(s, "requests/s", "req/s"),
    /** Filled in by derived.ts from the steady section's connections/s of the same party. */
    vsSteady: metric(s, "requests/s / the party's own steady connections/s (same run, no reloads)", "x", 2, false),
    connect: metric(s, "connect errors", "count", 0, false),
    read: metric(s, "read errors", "count", 0, false),
    write: metric(s, "write errors", "count", 0, false),
    timeout: metric(s, "timeouts", "count", 0, false),
    non2xx: metric(s, "non-2xx responses", "count", 0, false),
    triggered: metric(s, "reloads triggered", "count", 0, false),
    done: metric(s, "reloads completed (switchyard coalesces)", "count", 0, false),
    failed: metric(s, "reloads failed", "count", 0, false),
  };
}

/** What the counts mean, once under the section's table. */
export function explainReloadSection(rec: Recorder, intervalMs: number, seconds: number): void {
  rec.text(section(intervalMs, seconds), "triggers run on a fixed clock; HAProxy's trigger (`reload` on the master CLI) waits while the master re-executes, so fewer fit; switchyard coalesces the triggers that arrive during a reload into one more reload");
}

export async function reloadUnderLoad(rec: Recorder, party: Party, intervalMs: number, seconds: number): Promise<void> {
  const m = reloadLoadMetrics(intervalMs, seconds);
  if (!party.reload || !party.reloadCounts) return;
  rec.declare(m.rps);
  rec.declare(m.vsSteady);
  const startCounts = party.reloadCounts();
  let running = true;
  let triggered = 0;
  let variant: Variant = 0;
  const load = wrk({ port: party.port("web"), connections: 64, seconds, close: true }).finally(() => (running = false));
  // On a fixed clock: a trigger that takes long (HAProxy's master CLI refuses connections
  // while the master re-executes) is followed at once by the next one that is due.
  const began = performance.now();
  const reloads = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, Math.max(0, began + (triggered + 1) * intervalMs - performance.now())));
      if (!running) break;
      variant = variant === 0 ? 1 : 0;
      await party.reload!(variant);
      triggered++;
    }
  })();
  let r;
  try {
    r = await load;
  } catch (err) {
    for (const x of (Object.values(m) as Metric[]).filter((x) => x !== m.vsSteady)) rec.note(x, party.name, `failed: ${(err as Error).message.slice(0, 160)}`);
    return;
  } finally {
    await reloads;
  }
  // Reloads still in flight when wrk stopped get a moment to report.
  await new Promise((res) => setTimeout(res, 1500));
  const end = party.reloadCounts();
  rec.add(m.rps, party.name, r.rps);
  rec.add(m.connect, party.name, r.errors.connect);
  rec.add(m.read, party.name, r.errors.read);
  rec.add(m.write, party.name, r.errors.write);
  rec.add(m.timeout, party.name, r.errors.timeout);
  rec.add(m.non2xx, party.name, r.errors.non2xx);
  rec.add(m.triggered, party.name, triggered);
  rec.add(m.done, party.name, end.succeeded - startCounts.succeeded);
  rec.add(m.failed, party.name, end.failed - startCounts.failed);
}
