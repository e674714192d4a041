// BPF steering at scale: 2 apps × 10,000 ports in one network namespace
// (scenario test/scenarios/bpf-many-ports.ts, run in `unshare -n`).
import test, { type ExecutionContext } from "ava";

import { scenarioResult } from "./helpers/netns.js";

interface Status {
  mode: string;
  sockets: number;
  apps: { name: string; ports: number }[];
}
interface Result {
  small: { wallMs: number; cpuMs: number }[];
  large: { wallMs: number; cpuMs: number };
  smallStatus: Status;
  ready: { mode: string };
  steeringUpdated: { ports_set: number; ports_removed: number; sockets: number };
  fixedPorts: number[];
  listening: string[];
  status: Status;
  dialled: { total: number; ipv6: number; misrouted: unknown[] };
  edges: Record<string, string[]>;
  unconfigured: Record<string, string[]>;
  steered: Record<string, number>;
  metric: Record<string, number>;
  workerErrors: number;
}

let run: Promise<Result> | undefined;
const result = (t: ExecutionContext): Promise<Result> => (run ??= scenarioResult<Result>(t, "bpf-many-ports"));

test.serial("20,000 ports: one listening socket per app, ports in the BPF map", async (t) => {
  const r = await result(t);
  t.is(r.ready.mode, "bpf");
  t.like(r.status, { mode: "bpf", sockets: 2, apps: [{ name: "a", ports: 10_000 }, { name: "b", ports: 10_000 }] });
  for (const p of r.fixedPorts) t.false(p >= 10_000 && p <= 29_999, `admin/target port ${p} inside a configured range`);
  // Besides the admin port and the two targets, the namespace holds exactly the two app sockets.
  t.is(r.listening.length, 2, `listening: ${r.listening.join(" ")}`);
  for (const l of r.listening) t.regex(l, /^\[::ffff:127\.0\.0\.1\]:\d+$/);
  // 20,000 ports × IPv4 and IPv6 (default Addresses: everywhere).
  t.like(r.steeringUpdated, { ports_set: 40_000, ports_removed: 0, sockets: 2 });
});

test.serial("200 connections to random configured ports reach the right app, over IPv4 and IPv6", async (t) => {
  const r = await result(t);
  t.is(r.dialled.total, 200);
  t.is(r.dialled.ipv6, 50);
  t.deepEqual(r.dialled.misrouted, []);
  t.deepEqual(r.edges, { 10000: ["a", "a"], 19999: ["a", "a"], 20000: ["b", "b"], 29999: ["b", "b"] });
});

test.serial("an unconfigured port is refused", async (t) => {
  const r = await result(t);
  const refused = ["error:ECONNREFUSED", "error:ECONNREFUSED"];
  t.deepEqual(r.unconfigured, { 9999: refused, 30000: refused });
});

test.serial("/status and /metrics count the steered connections per app", async (t) => {
  const r = await result(t);
  t.is((r.steered.a ?? 0) + (r.steered.b ?? 0), 208, JSON.stringify(r.steered));
  t.true((r.steered.a ?? 0) > 0 && (r.steered.b ?? 0) > 0);
  t.deepEqual(r.metric, r.steered);
  t.is(r.workerErrors, 0);
});

test.serial("startup with 20,000 ports takes about as long as with 10", async (t) => {
  const r = await result(t);
  const fmt = (x: { wallMs: number; cpuMs: number }) => `${x.wallMs} ms wall, ${x.cpuMs} ms CPU`;
  t.log(`spawn → supervisor_ready: 10 ports ${r.small.map(fmt).join(" / ")}; 20,000 ports ${fmt(r.large)}`);
  t.like(r.smallStatus, { mode: "bpf", sockets: 2, apps: [{ name: "a", ports: 5 }, { name: "b", ports: 5 }] });
  // CPU time is what the port count costs; other load on the machine inflates wall time only.
  const smallCpu = Math.max(...r.small.map((x) => x.cpuMs));
  t.true(r.large.cpuMs <= smallCpu + 1000, `CPU ${r.large.cpuMs} ms > ${smallCpu} + 1000 ms`);
  const smallWall = Math.max(...r.small.map((x) => x.wallMs));
  t.true(r.large.wallMs <= smallWall + 3000, `wall ${r.large.wallMs} ms > ${smallWall} + 3000 ms`);
});
