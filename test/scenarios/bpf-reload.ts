// Scenario, run by test/bpf-reload.test.ts inside `unshare -n`: one BPF-mode
// supervisor goes through four reloads, each under 16 client loops (IPv4 and
// IPv6): 5,000 ports move from app a to app b, app c is added, app b is removed,
// and app a's target changes. Each phase reports its load, its steering_updated
// line, the app sockets before and after, and where ports lead afterwards.
import type { RunningSupervisor } from "../helpers/supervisor.js";
import { currentPids, status } from "../helpers/reload.js";
import {
  listeningExcept,
  mark,
  runScenario,
  samplePorts,
  steeringStatus,
  tagsOf,
  underLoad,
  type TaggedLoad,
} from "./netns-lib.js";

/** What a reload went through, filled in as this scenario sees it happen. */
interface Reloaded {
  /** When the port map was seen updated (its steering_updated line). */
  steeredAt?: number;
  /** When every worker of the old generation was seen to stop accepting. */
  oldStoppedAt?: number;
  updated?: Record<string, unknown>;
  ended?: string;
  oldGeneration?: number;
}

/** Writes the config, SIGHUPs, and waits for the map update, the end, and the old generation to stop accepting. */
async function reload(sup: RunningSupervisor, config: unknown, seen: Reloaded): Promise<void> {
  const before = await status(sup);
  const oldPids = currentPids(before);
  seen.oldGeneration = before.generation!;
  const from = mark(sup);
  sup.writeConfig(config);
  process.kill(sup.pid, "SIGHUP");
  seen.updated = await sup.waitFor((l) => l.event === "steering_updated", 15_000, from);
  seen.steeredAt = Date.now();
  seen.ended = (await sup.waitFor((l) => l.event === "reload_succeeded" || l.event === "reload_failed", 15_000, from)).event;
  await Promise.all(oldPids.map((pid) => sup.waitFor((l) => l.event === "worker_draining" && l.pid === pid, 15_000, from)));
  seen.oldStoppedAt = Date.now();
}

/** How many dials each answer came from: every port dialled over 127.0.0.1 and ::1. */
async function leadsTo(ports: number[]): Promise<Record<string, number>> {
  const dials = ports.flatMap((port) => [{ port, host: "127.0.0.1" }, { port, host: "::1" }]);
  const tags = await tagsOf(dials);
  const out: Record<string, number> = {};
  for (const t of tags) out[t] = (out[t] ?? 0) + 1;
  return out;
}

interface Phase {
  load: Omit<TaggedLoad, "tags">;
  /** Connections started after the moment the phase's strict check applies from. */
  strictChecked: number;
  reload: Pick<Reloaded, "updated" | "ended" | "oldGeneration">;
  socketsBefore: string[];
  socketsAfter: string[];
  statusSockets: number;
  leadsTo: Record<string, Record<string, number>>;
  ms: { load: number; total: number };
}

runScenario(async (s) => {
  const ta = await s.target("a");
  const tb = await s.target("b");
  const tc = await s.target("c");
  const ta2 = await s.target("a2");
  const to = (t: { port: number }) => [`127.0.0.1:${t.port}`];
  const A = { Name: "a", Ports: ["10000-14999", "15000-19999"], Targets: to(ta) };
  const B = { Name: "b", Ports: ["20000-24999"], Targets: to(tb) };
  const aKept = { ...A, Ports: ["10000-14999"] };
  const bGrown = { ...B, Ports: ["15000-19999", "20000-24999"] };
  const C = { Name: "c", Ports: ["30000-30999"], Targets: to(tc) };

  const sup = await s.supervisor({ config: { Apps: [A, B] }, steering: "bpf", workers: 2, drainTimeout: 10 });
  const fixed = [sup.adminPort, ta.port, tb.port, tc.port, ta2.port];
  const sockets = () => listeningExcept(fixed);
  const startSockets = sockets();

  const unmoved = samplePorts(10000, 14999, 100);
  const moved = samplePorts(15000, 19999, 100);
  const bOwn = samplePorts(20000, 24999, 100);
  const cOwn = samplePorts(30000, 30999, 100);
  const appOf = (port: number): string => (port < 15000 ? "a" : port < 25000 ? "b" : "c");

  /**
   * One reload under load. `accept` judges each answer, knowing what of the
   * reload was seen when the connection started; `strict` counts the answers
   * held to the new routing alone, so the test knows that rule was exercised.
   */
  async function phase(p: {
    load: number[];
    config: unknown;
    accept: (port: number, tag: string, startedAt: number, seen: Reloaded) => boolean;
    strict: { ports: (port: number) => boolean; from: (seen: Reloaded) => number | undefined };
    after: Record<string, number[]>;
  }): Promise<Phase> {
    const t0 = Date.now();
    const socketsBefore = sockets();
    const seen: Reloaded = {};
    let strictChecked = 0;
    const { load } = await underLoad(p.load, (port, tag, startedAt) => {
      const from = p.strict.from(seen);
      if (from !== undefined && p.strict.ports(port) && startedAt > from) strictChecked++;
      return p.accept(port, tag, startedAt, seen);
    }, () => reload(sup, p.config, seen));
    // The old generation's copies of a removed app's socket go with its workers.
    await sup.waitFor((l) => l.event === "generation_stopped" && l.generation === seen.oldGeneration, 20_000);
    const loadMs = Date.now() - t0;
    const leads: Record<string, Record<string, number>> = {};
    for (const [name, list] of Object.entries(p.after)) leads[name] = await leadsTo(list);
    const { tags: _tags, ...rest } = load;
    return {
      load: rest,
      strictChecked,
      reload: { updated: seen.updated, ended: seen.ended, oldGeneration: seen.oldGeneration },
      socketsBefore,
      socketsAfter: sockets(),
      statusSockets: (await steeringStatus(sup)).sockets,
      leadsTo: leads,
      ms: { load: loadMs, total: Date.now() - t0 },
    };
  }

  /** True once `at` is known and the connection started after it. */
  const startedAfter = (at: number | undefined, startedAt: number): boolean => at !== undefined && startedAt > at;
  const isMoved = (port: number): boolean => port >= 15000 && port <= 19999;

  // 1. Move 15000-19999 from a to b: until the map update either app may answer
  //    a moved port; a connection started after it must reach b.
  const move = await phase({
    load: [...unmoved, ...moved, ...bOwn],
    config: { Apps: [aKept, bGrown] },
    accept: (port, tag, startedAt, seen) => {
      if (!isMoved(port)) return tag === appOf(port);
      return startedAfter(seen.steeredAt, startedAt) ? tag === "b" : tag === "a" || tag === "b";
    },
    strict: { ports: isMoved, from: (seen) => seen.steeredAt },
    after: { unmoved: samplePorts(10000, 14999, 100), moved: samplePorts(15000, 19999, 200), b: samplePorts(20000, 24999, 100) },
  });

  // 2. Add app c (its ports are not in the load: they are refused until then).
  const add = await phase({
    load: [...unmoved, ...moved, ...bOwn],
    config: { Apps: [aKept, bGrown, C] },
    accept: (port, tag) => tag === appOf(port),
    strict: { ports: () => false, from: () => undefined },
    after: { c: samplePorts(30000, 30999, 100), a: samplePorts(10000, 14999, 25), b: samplePorts(15000, 24999, 25) },
  });

  // 3. Remove app b; the load is on the apps that stay.
  const remove = await phase({
    load: [...unmoved, ...cOwn],
    config: { Apps: [aKept, C] },
    accept: (port, tag) => tag === appOf(port),
    strict: { ports: () => false, from: () => undefined },
    after: { b: samplePorts(15000, 24999, 100), a: samplePorts(10000, 14999, 25), c: samplePorts(30000, 30999, 25) },
  });

  // 4. Only a's target changes: once the old generation stopped accepting, a's
  //    ports reach the new target.
  const targets = await phase({
    load: [...unmoved, ...cOwn],
    config: { Apps: [{ ...aKept, Targets: to(ta2) }, C] },
    accept: (port, tag, startedAt, seen) => {
      if (appOf(port) === "c") return tag === "c";
      return startedAfter(seen.oldStoppedAt, startedAt) ? tag === "a2" : tag === "a" || tag === "a2";
    },
    strict: { ports: (port) => appOf(port) === "a", from: (seen) => seen.oldStoppedAt },
    after: { a: samplePorts(10000, 14999, 100), c: samplePorts(30000, 30999, 25) },
  });

  const workerDeaths = sup.logs.filter((l) => l.event === "worker_died" || l.event === "worker_start_failed").length;
  return { startSockets, move, add, remove, targets, workerDeaths };
});
