// `make bench` / `make bench-quick`: re-executes itself in a private network
// namespace, starts the backends, measures every party in interleaved rounds,
// writes bench/RESULTS.md (and prints it), bench/results.json and
// bench/chart.svg. Every process started is stopped at the end, on error and
// on SIGINT/SIGTERM too (procs.ts keeps their pids).
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { inBenchNetns, nofileLimit, reexecInNetns, requireOwnNetns } from "./netns.js";
import { parseOptions, wants, type BenchOptions } from "./options.js";
import { Backends } from "./backends.js";
import { killAll, sweepNetns } from "./procs.js";
import { Recorder } from "./record.js";
import { describeMachine } from "./machine.js";
import { renderReport } from "./report.js";
import { ALL_PARTIES as EVERY_PARTY, PROXIES as EVERY_PROXY, makeParty, type PartyName } from "./parties/make.js";
import type { Party, PartySpec } from "./parties/party.js";
import { SHARE, steadyMetrics, steadyRound } from "./measure/steady.js";
import { latencyMetrics, reloadLatency } from "./measure/reload-latency.js";
import { explainReloadSection, reloadUnderLoad } from "./measure/reload-load.js";
import { scaleRound } from "./measure/scale.js";
import { explainSaturation, saturationRound } from "./measure/saturation.js";
import { sniPeekRound } from "./measure/sni-peek.js";
import { explainReloadCpu, reloadCpu, reloadCpuMetrics } from "./measure/reload-cpu.js";
import { measureNodeIdle, measureNodeStart, NodeBaseline } from "./measure/node-baseline.js";
import { derive } from "./derived.js";
import { buildResults, writeResults } from "./results-json.js";
import { writeChart } from "./chart.js";

const argv = process.argv.slice(2);
if (!inBenchNetns()) process.exit(await reexecInNetns(fileURLToPath(import.meta.url), argv));
requireOwnNetns();

process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping everything the benchmark started`);
    killAll();
    process.exit(130);
  });
}

const began = performance.now();
const startedAt = new Date();
const o: BenchOptions = parseOptions(argv, nofileLimit());
const ALL_PARTIES = EVERY_PARTY.filter((p) => !o.parties || o.parties.has(p));
const PROXIES = EVERY_PROXY.filter((p) => !o.parties || o.parties.has(p));
const spec: PartySpec = { workers: o.workers, maxconn: Math.min(o.idleConnections + 250, Math.floor((nofileLimit() - 200) / 2)), scalePorts: 0 };
const rec = new Recorder();
const baseline = new NodeBaseline();
const clock = () => `[${new Date(performance.now() - began).toISOString().slice(14, 19)}]`;
const say = (s: string) => console.log(`${clock()} ${s}`);

/** Starts the party, runs `work`, stops it; a party that cannot start gets `onUnavailable`. */
async function withParty(name: PartyName, work: (p: Party) => Promise<void>, onUnavailable: (reason: string) => void): Promise<void> {
  const party = makeParty(name, spec);
  try {
    await party.start();
  } catch (err) {
    const reason = (err as Error).message.split("\n")[0]!.slice(0, 200);
    say(`  ${name} unavailable: ${reason}`);
    onUnavailable(`unavailable: ${reason}`);
    party.cleanup?.();
    return;
  }
  try {
    await work(party);
  } finally {
    await party.stop();
    party.cleanup?.();
  }
}

async function measure(): Promise<void> {
  const rounds = Array.from({ length: o.rounds }, (_, r) => r);
  if (wants(o, "steady")) {
    say("bare idle node: RssAnon once it settled");
    await measureNodeIdle(baseline);
    for (const r of rounds) {
      for (const name of ALL_PARTIES) {
        say(`steady state, round ${r + 1}/${o.rounds}: ${name}`);
        const all = Object.values(steadyMetrics).filter((x) => typeof x !== "function");
        await withParty(name, (p) => steadyRound(rec, o, p, r), (why) => all.forEach((x) => rec.note(x, name, why)));
      }
    }
    rec.text(SHARE, "target: within 1.5×. Every worker accepts on the same listening socket (per port, or per app in BPF mode): each worker's relay thread is woken by a connection and accepts at most 4 per turn of its loop, so the worker woken first cannot take a whole burst");
  }
  if (wants(o, "latency")) {
    for (const r of rounds) {
      for (const name of PROXIES) {
        say(`reload latency, round ${r + 1}/${o.rounds}: ${name}`);
        await withParty(name, (p) => reloadLatency(rec, p, o.latencySamples), (why) => rec.note(latencyMetrics.median, name, why));
      }
    }
  }
  if (wants(o, "cpu")) {
    explainReloadCpu(rec, o.reloadCpuSamples);
    for (const r of rounds) {
      say(`CPU per reload, round ${r + 1}/${o.rounds}: ${o.nodeStartRuns} × bare node -e 0`);
      await measureNodeStart(baseline, o.nodeStartRuns).catch((err: Error) => say(`  bare node -e 0 not measured: ${err.message}`));
      for (const name of PROXIES) {
        say(`CPU per reload, round ${r + 1}/${o.rounds}: ${name}`);
        await withParty(name, (p) => reloadCpu(rec, p, o.reloadCpuSamples), (why) => rec.note(reloadCpuMetrics.perReload, name, why));
      }
    }
  }
  if (wants(o, "reload")) {
    for (const interval of o.reloadIntervalsMs) {
      explainReloadSection(rec, interval, o.reloadLoadSeconds);
      for (const r of rounds) {
        for (const name of PROXIES) {
          say(`reloads every ${interval} ms under load, round ${r + 1}/${o.rounds}: ${name}`);
          await withParty(name, (p) => reloadUnderLoad(rec, p, interval, o.reloadLoadSeconds), () => undefined);
        }
      }
    }
  }
  if (wants(o, "saturation")) {
    explainSaturation(rec);
    for (const r of rounds) {
      for (const name of PROXIES) {
        say(`past saturation, round ${r + 1}/${o.rounds}: ${name}`);
        await saturationRound(rec, o, name, spec);
      }
    }
  }
  if (wants(o, "sni") && (!o.parties || o.parties.has("switchyard-ports"))) {
    for (const r of rounds) {
      say(`TLS by server name, round ${r + 1}/${o.rounds}: switchyard-ports`);
      await sniPeekRound(rec, o.workers, o.quick ? 300 : 1000);
    }
  }
  if (wants(o, "scale")) {
    for (const ports of o.scalePorts) {
      const failed = new Set<PartyName>();
      for (const r of rounds.slice(0, 3)) {
        for (const name of PROXIES) {
          // A party that could not do it once is not retried: the note says why.
          if (failed.has(name)) continue;
          say(`scale, ${ports} ports, round ${r + 1}: ${name}`);
          if (!(await scaleRound(rec, name, spec, ports))) failed.add(name);
        }
      }
    }
  }
}

const backends = new Backends();
let failure: unknown;
try {
  say(`starting backends (${o.quick ? "quick" : "full"} run, ${o.rounds} rounds, ${o.workers} workers)`);
  await backends.start();
  await measure();
} catch (err) {
  failure = err;
  console.error(`benchmark aborted: ${(err as Error).stack ?? String(err)}`);
} finally {
  await backends.stop().catch(() => undefined);
  const left = await sweepNetns();
  if (left.length) say(`stopped ${left.length} leftover process(es) in the benchmark's namespace: ${left.join(", ")}`);
}

const notes = [
  `idle-connection test: ${o.idleConnections.toLocaleString("en-US")} connections${o.idleConnections < o.idleWanted ? ` (not ${o.idleWanted.toLocaleString("en-US")}: RLIMIT_NOFILE is ${nofileLimit()} and cannot be raised here; HAProxy holds both ends in one process)` : ""}`,
  `HAProxy maxconn ${spec.maxconn}`,
  ...(failure ? [`**run aborted early**: ${(failure as Error).message}`] : []),
];
if (baseline.startCpuMs.length) notes.push(`bare \`node -e 0\`: ${baseline.startCpu().toFixed(1)} ms CPU (median of ${baseline.startCpuMs.length} starts, bash's \`time\`); a reload is set against ${o.workers} of them for switchyard (its --workers), 1 for HAProxy (its one new worker)`);
if (baseline.idleRssAnon.length) notes.push(`bare idle \`node\` (\`node -e 'setInterval(() => {}, 1e9)'\`, settled): RssAnon ${(baseline.idleAnon() / 2 ** 20).toFixed(1)} MiB; each party's idle memory is read after 10 s without traffic (V8's memory reducer gives start-up garbage back about 8 s after a process's last activity)`);
derive(rec, o, [...ALL_PARTIES], baseline);
const results = buildResults(rec, o, [...ALL_PARTIES], baseline, startedAt);
const report = renderReport(rec, { machine: describeMachine(nofileLimit()), options: o, parties: [...ALL_PARTIES], startedAt, seconds: (performance.now() - began) / 1000, notes, results });
const file = (name: string) => fileURLToPath(new URL(`../../bench/${name}`, import.meta.url));
fs.writeFileSync(file("RESULTS.md"), report);
writeResults(file("results.json"), results);
writeChart(file("chart.svg"), results);
console.log(`\n${report}\n${JSON.stringify(results, null, 2)}\nwritten to ${file("RESULTS.md")}, results.json and chart.svg`);
process.exit(failure ? 1 : 0);
