// Past saturation: more clients than the proxy may carry at once, each
// request on a new connection. HAProxy with `maxconn` stops accepting at its
// limit and lets the rest wait in the kernel's queue; switchyard with
// --max-connections closes the connections over its limit at once. Reported:
// what was admitted, how fast, and the share turned away.
import { metric, type Recorder } from "../record.js";
import type { BenchOptions } from "../options.js";
import type { PartySpec } from "../parties/party.js";
import { makeParty, type PartyName } from "../parties/make.js";
import { errorTotal, wrk } from "../tools/wrk.js";

/** Connections the proxy may carry at once, in all. */
const LIMIT = 128;
/** Clients offered: four times the limit. */
const CLIENTS = 512;

const S = `Past saturation (${CLIENTS} clients, new connection per request; limit ${LIMIT} connections: HAProxy maxconn, switchyard --max-connections per worker)`;

export const saturationMetrics = {
  rps: metric(S, "admitted requests/s", "req/s"),
  p50: metric(S, "p50 latency of admitted requests", "ms", 3),
  p99: metric(S, "p99 latency of admitted requests", "ms", 3),
  shed: metric(S, "share turned away (errors / attempts)", "%", 1, false),
};
const m = saturationMetrics;

export function explainSaturation(rec: Recorder): void {
  rec.text(S, "HAProxy at maxconn stops accepting: the clients over it wait in the kernel's queue; switchyard closes connections over its limit at once (wrk counts them as errors: turned away), and a worker whose event loop falls behind stops accepting (--overload-lag)");
}

export async function saturationRound(rec: Recorder, o: BenchOptions, name: PartyName, base: PartySpec): Promise<void> {
  const spec: PartySpec = { ...base, maxconn: LIMIT, maxConnectionsPerWorker: Math.ceil(LIMIT / base.workers) };
  const party = makeParty(name, spec);
  try {
    await party.start();
    const r = await wrk({ port: party.port("web"), connections: CLIENTS, seconds: o.wrkSeconds, close: true });
    const turnedAway = errorTotal(r);
    rec.add(m.rps, name, r.rps);
    rec.add(m.p50, name, r.p50Ms);
    rec.add(m.p99, name, r.p99Ms);
    rec.add(m.shed, name, (100 * turnedAway) / Math.max(1, r.requests + turnedAway));
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0]!.slice(0, 200);
    for (const x of Object.values(m)) rec.note(x, name, `failed: ${msg}`);
  } finally {
    await party.stop();
    party.cleanup?.();
  }
}
