// One party, one round, steady state: bulk throughput, keep-alive and
// connection-per-request HTTP (with the CPU each connection costs), memory
// (spares counted apart), and how evenly workers accept.
import { metric, type Metric, type Recorder } from "../record.js";
import type { BenchOptions } from "../options.js";
import type { Party, WorkerShare } from "../parties/party.js";
import { iperf } from "../tools/iperf.js";
import { errorTotal, wrk, type WrkResult } from "../tools/wrk.js";
import { holdIdleConnections } from "./idle-conns.js";
import { MiB, partyAnonRss, partyRss, peakRssDuring } from "./rss.js";
import { totalAnonRss } from "../procfs.js";
import { treeCpu } from "../cputime.js";
import { sleep } from "../procs.js";

const T = "Throughput (iperf3, Gbit/s)";
const K = "HTTP over 64 keep-alive connections (wrk → nginx)";
const C = "New connection per request (wrk -H 'Connection: close', 64 connections)";
const M = "Memory: RSS of all proxy processes";
export const SHARE = "Accept share per worker (connection-per-request run)";
const SHARE_KA = "Accept share per worker (keep-alive run: 64 connections opened at once)";

export const steadyMetrics = {
  iperf1: metric(T, "1 stream", "Gbit/s", 2),
  iperf4: metric(T, "4 streams", "Gbit/s", 2),
  kaRps: metric(K, "requests/s", "req/s"),
  kaP50: metric(K, "p50 latency", "ms", 3),
  kaP99: metric(K, "p99 latency", "ms", 3),
  kaErr: metric(K, "errors (all kinds)", "count", 0, false),
  ccRps: metric(C, "connections/s", "conn/s"),
  ccP50: metric(C, "p50 latency", "ms", 3),
  ccP99: metric(C, "p99 latency", "ms", 3),
  ccErr: metric(C, "errors (all kinds)", "count", 0, false),
  ccCpu: metric(C, "CPU per connection (utime + stime of all proxy processes over the run, /proc)", "µs", 1),
  rssIdle: metric(M, "idle", "MiB", 1),
  rssIdleAnon: metric(M, "idle, anonymous only (RssAnon: without the binary shared between processes)", "MiB", 1),
  processes: metric(M, "processes, idle (spares included)", "count", 1, false),
  anonPerProcess: metric(M, "idle RssAnon per process", "MiB", 2, false),
  anonVsNode: metric(M, "idle RssAnon per process / a bare idle `node`", "x", 2, false),
  spares: metric(M, "spare workers, idle", "count", 1, false),
  sparesAnon: metric(M, "spare workers' RssAnon (sum)", "MiB", 1, false),
  rssLoad: metric(M, "peak under keep-alive load", "MiB", 1),
  rssHeld: (n: number) => metric(M, `with ${n.toLocaleString("en-US")} idle connections`, "MiB", 1),
  rssPerConn: metric(M, "per idle connection", "KiB", 1),
  share: metric(SHARE, "busiest/idlest worker (accepted)", "x", 2, false),
  shareKa: metric(SHARE_KA, "busiest/idlest worker (connections accepted)", "x", 2, false),
};
const m = steadyMetrics;

async function attempt<V>(rec: Recorder, party: Party, what: Metric[], work: () => Promise<V>): Promise<V | undefined> {
  try {
    return await work();
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0]!.slice(0, 200);
    for (const w of what) rec.note(w, party.name, `failed: ${msg}`);
    console.log(`  ${party.name}: ${what[0]!.label}: ${msg}`);
    return undefined;
  }
}

function recordWrk(rec: Recorder, party: Party, r: WrkResult, rps: Metric, p50: Metric, p99: Metric, err: Metric): void {
  rec.add(rps, party.name, r.rps);
  rec.add(p50, party.name, r.p50Ms);
  rec.add(p99, party.name, r.p99Ms);
  rec.add(err, party.name, errorTotal(r));
}

function shareDelta(before: WorkerShare[], after: WorkerShare[]): number[] {
  return after.map((w) => w.accepted - (before.find((b) => b.pid === w.pid)?.accepted ?? 0));
}

/** How evenly the workers accepted since `before`: busiest/idlest, and each worker's count as text. */
async function recordShare(rec: Recorder, party: Party, round: number, before: WorkerShare[], metricOf: Metric, section: string): Promise<void> {
  if (!party.workerShares) return;
  const deltas = shareDelta(before, await party.workerShares());
  const lo = Math.min(...deltas);
  const hi = Math.max(...deltas);
  rec.add(metricOf, party.name, lo > 0 ? hi / lo : Infinity);
  if (lo === 0) rec.note(metricOf, party.name, "a worker accepted nothing");
  rec.text(section, `round ${round + 1}, ${party.name}: accepted per worker ${deltas.join(" / ")} (${((100 * hi) / Math.max(1, deltas.reduce((a, b) => a + b, 0))).toFixed(0)}% to the busiest)`);
}

/** How long a party is left idle before its idle memory is read. */
const IDLE_SETTLE_MS = 10_000;

/** Waits (bounded) until every spare the party lists is ready: their start-up is not idle memory. */
async function sparesReady(party: Party): Promise<{ pid: number }[]> {
  if (!party.spares) return [];
  const deadline = performance.now() + 15_000;
  for (;;) {
    const spares = await party.spares().catch(() => []);
    if (spares.every((x) => x.ready) || performance.now() > deadline) return spares;
    await sleep(250);
  }
}

/** The idle memory figures: all processes, per process, and the spares' share. */
async function idleMemory(rec: Recorder, party: Party): Promise<void> {
  // Every row in its place, whichever party comes first (HAProxy has no spares rows to fill).
  for (const x of [m.rssIdle, m.rssIdleAnon, m.processes, m.anonPerProcess, m.anonVsNode, m.spares, m.sparesAnon]) rec.declare(x);
  const spares = await sparesReady(party);
  // Idle as an operator finds it between bursts: V8's memory reducer gives back start-up
  // garbage about 8 s after a process's last activity (a bare `node` has none to give back).
  await sleep(IDLE_SETTLE_MS);
  const pids = party.pids();
  const anon = partyAnonRss(party);
  rec.add(m.rssIdle, party.name, partyRss(party) / MiB);
  rec.add(m.rssIdleAnon, party.name, anon / MiB);
  rec.add(m.processes, party.name, pids.length);
  rec.add(m.anonPerProcess, party.name, anon / Math.max(1, pids.length) / MiB);
  if (!party.spares) return;
  rec.add(m.spares, party.name, spares.length);
  rec.add(m.sparesAnon, party.name, totalAnonRss(spares.map((x) => x.pid)) / MiB);
}

export async function steadyRound(rec: Recorder, o: BenchOptions, party: Party, round: number): Promise<void> {
  const name = party.name;
  // Let freshly started workers settle (JIT, first GC) before the idle figure.
  await new Promise((r) => setTimeout(r, 1000));
  if (party.proxied) await idleMemory(rec, party);

  for (const [streams, mt] of [[1, m.iperf1], [4, m.iperf4]] as const) {
    const gbps = await attempt(rec, party, [mt], () => iperf(party.port("bulk"), streams, o.iperfSeconds));
    if (gbps !== undefined) rec.add(mt, name, gbps);
  }

  const beforeKa = party.workerShares ? await party.workerShares().catch(() => []) : [];
  const ka = await attempt(rec, party, [m.kaRps, m.kaP50, m.kaP99, m.kaErr], () => peakRssDuring(party, wrk({ port: party.port("web"), connections: 64, seconds: o.wrkSeconds, close: false })));
  if (ka) {
    recordWrk(rec, party, ka.result, m.kaRps, m.kaP50, m.kaP99, m.kaErr);
    if (party.proxied) rec.add(m.rssLoad, name, ka.peak / MiB);
    await recordShare(rec, party, round, beforeKa, m.shareKa, SHARE_KA);
  }

  const before = party.workerShares ? await party.workerShares().catch(() => []) : [];
  const cpuBefore = party.proxied ? treeCpu(() => party.pids()).ms : NaN;
  const cc = await attempt(rec, party, [m.ccRps, m.ccP50, m.ccP99, m.ccErr], () => wrk({ port: party.port("web"), connections: 64, seconds: o.wrkSeconds, close: true }));
  if (cc) recordWrk(rec, party, cc, m.ccRps, m.ccP50, m.ccP99, m.ccErr);
  // wrk's request count is the connection count: one request per connection.
  if (cc && party.proxied && cc.requests > 0) rec.add(m.ccCpu, name, ((treeCpu(() => party.pids()).ms - cpuBefore) * 1000) / cc.requests);
  if (cc) await recordShare(rec, party, round, before, m.share, SHARE);

  if (!party.proxied || o.idleConnections <= 0) return;
  const held = m.rssHeld(o.idleConnections);
  const idle = await attempt(rec, party, [held, m.rssPerConn], () => holdIdleConnections(party, o.idleConnections));
  if (!idle) return;
  if (idle.failed > 0) rec.text(M, `round ${round + 1}, ${name}: ${idle.failed} of ${o.idleConnections} idle connections failed`);
  if (idle.ready > 0) {
    rec.add(held, name, idle.rssHeld / MiB);
    rec.add(m.rssPerConn, name, (idle.rssHeld - idle.rssBefore) / idle.ready / 1024);
  }
}
