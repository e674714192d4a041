// Scale in ports: one extra app listening on N ports (10,000 …), routed to a tag
// backend. Start-up: from spawning the proxy until a connection to the app's
// last port is carried to its target. Reload: from the trigger until that port
// answers with the other config's target. Failures are results, shown as such.
import { metric, type Recorder } from "../record.js";
import type { PartySpec } from "../parties/party.js";
import { makeParty, type PartyName } from "../parties/make.js";
import { scaleApp, TAG_NAMES } from "../layout.js";
import { pollTag } from "../tools/poll.js";
import { MiB, partyRss } from "./rss.js";

const S = "Scale in ports (one more app on N ports; start-up until its last port forwards)";

export function scaleMetrics(n: number) {
  const label = `${n.toLocaleString("en-US")} ports`;
  return {
    startup: metric(S, `${label}: start-up`, "ms"),
    reload: metric(S, `${label}: reload (until 20 new connections in a row follow it)`, "ms"),
    rss: metric(S, `${label}: RSS idle`, "MiB", 1),
  };
}

/** One start, one reload and a stop; returns false when the party could not do it (noted). */
export async function scaleRound(rec: Recorder, name: PartyName, base: PartySpec, ports: number): Promise<boolean> {
  const m = scaleMetrics(ports);
  // Few connections here: a small maxconn leaves HAProxy's file descriptors to the listeners.
  const spec = { ...base, maxconn: 1000, scalePorts: ports };
  const party = makeParty(name, spec);
  const last = scaleApp(ports, 0)!.last;
  const fail = (what: string, err: unknown) => {
    const msg = `${what}: ${((err as Error).message ?? String(err)).split("\n")[0]!.slice(0, 220)}`;
    rec.note(m.startup, name, msg);
    rec.note(m.reload, name, what === "start" ? "–" : msg);
    rec.text(S, `${name}, ${ports} ports: ${msg}`);
    console.log(`  ${name} @ ${ports} ports: ${msg}`);
    return false;
  };
  try {
    try {
      await party.start();
      rec.add(m.startup, name, (await pollTag(last, TAG_NAMES[0], party.spawnedAt, 120_000)).firstMs);
    } catch (err) {
      return fail("start", err);
    }
    rec.add(m.rss, name, partyRss(party) / MiB);
    try {
      await party.whenReloadable?.();
      const t0 = performance.now();
      await party.reload!(1);
      rec.add(m.reload, name, (await pollTag(last, TAG_NAMES[1], t0, 120_000, 20)).settledMs);
    } catch (err) {
      return fail("reload", err);
    }
    return true;
  } finally {
    await party.stop();
    party.cleanup?.();
  }
}
