// Reload latency: from the trigger (config written, signal or CLI command sent)
// until new connections to the tag app reach the new config's tag backend: the
// first one, and the first of 20 in a row (until then the old generation or
// worker may still take some: counted as stale).
import { median, metric, type Recorder } from "../record.js";
import type { Party } from "../parties/party.js";
import { TAG_NAMES, type Variant } from "../layout.js";
import { pollTag } from "../tools/poll.js";

const S = "Reload latency (trigger → new connections follow the new config)";
export const latencyMetrics = {
  median: metric(S, "first new connection on the new config", "ms", 1),
  settled: metric(S, "all new connections on the new config (20 in a row)", "ms", 1),
  max: metric(S, "slowest sample (all new)", "ms", 1),
  stale: metric(S, "old-config answers after the first new one, per reload", "count", 1, false),
};
const PROBES = 20;

async function settled(party: Party, before: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (party.reloadCounts!().succeeded + party.reloadCounts!().failed <= before && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

export async function reloadLatency(rec: Recorder, party: Party, samples: number): Promise<void> {
  if (!party.reload || !party.reloadCounts) return;
  const port = party.port("tag");
  const first: number[] = [];
  const all: number[] = [];
  const stale: number[] = [];
  let variant: Variant = 0;
  try {
    for (let i = 0; i < samples; i++) {
      variant = variant === 0 ? 1 : 0;
      await party.whenReloadable?.();
      const c = party.reloadCounts();
      const t0 = performance.now();
      await party.reload(variant);
      const p = await pollTag(port, TAG_NAMES[variant], t0, 30_000, PROBES);
      first.push(p.firstMs);
      all.push(p.settledMs);
      stale.push(p.stale);
      // The next trigger must not coalesce into this reload.
      await settled(party, c.succeeded + c.failed, 30_000);
    }
  } catch (err) {
    rec.note(latencyMetrics.median, party.name, `failed: ${(err as Error).message.slice(0, 160)}`);
  }
  if (first.length === 0) return;
  rec.add(latencyMetrics.median, party.name, median(first));
  rec.add(latencyMetrics.settled, party.name, median(all));
  rec.add(latencyMetrics.max, party.name, Math.max(...all));
  rec.add(latencyMetrics.stale, party.name, median(stale));
}
