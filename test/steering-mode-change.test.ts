// A supervisor that ran in ports mode leaves its per-port listeners ("tcp-…") in
// systemd's fd store; when the unit is changed to `--steering auto` or `bpf` and the
// supervisor restarts where BPF works, those sockets are neither BPF mode's nor
// closable without resetting what waits in their queues. Scenario
// test/scenarios/steering-mode-change.ts, in `unshare -n` (BPF is never attached to
// the machine's own namespace), under the suite's service manager.
import test, { type ExecutionContext } from "ava";
import type { LogLine } from "./helpers/supervisor.js";
import { scenarioResult } from "./helpers/netns.js";

interface Restart {
  first: LogLine;
  /** Each port dialled once the restarted supervisor ran: true if echoed. */
  queued: (boolean | string)[];
  received: string[];
  fallbacks: LogLine[];
  events: string[];
  starts: number;
  inodes: number[];
  links: number;
}

interface Result {
  before: { stored: string[]; inodes: number[] };
  auto: Restart;
  storedAfterAuto: string[];
  bpf: Restart;
  afterStop: { first: LogLine; echoes: boolean[]; links: number };
}

let run: Promise<Result> | undefined;
const result = (t: ExecutionContext): Promise<Result> => (run ??= scenarioResult<Result>(t, "steering-mode-change"));

const OWN = /^systemd's fd store holds the per-port listening sockets of a supervisor in ports mode \(tcp-127\.0\.0\.1-\d+, tcp-127\.0\.0\.1-\d+\), which BPF mode does not use; closing them would reset the connections in their queues/;
const SWITCH = /; to switch to BPF, stop the service \(which empties the fd store\) and start it$/;

test("ports mode, then the unit says --steering auto and the supervisor is killed: the restart stays in ports mode on the same sockets, says why, serves what waited", async (t) => {
  const { before, auto, storedAfterAuto } = await result(t);
  t.deepEqual(before.stored.filter((n) => n.startsWith("tcp-")).length, 2, JSON.stringify(before));
  t.deepEqual([...auto.received].sort(), before.stored);
  t.like(auto.first, { event: "supervisor_ready", mode: "ports" }, JSON.stringify(auto.first));
  t.is(auto.starts, 1, "the supervisor was started again: it failed");
  t.is(auto.fallbacks.length, 1, JSON.stringify(auto.fallbacks));
  t.like(auto.fallbacks[0], { role: "supervisor", level: 30, mode: "ports" });
  t.regex(String(auto.fallbacks[0]?.reason), OWN);
  t.regex(String(auto.fallbacks[0]?.reason), SWITCH);
  t.deepEqual(auto.queued, [true, true], "connections queued across the restart were not served");
  t.deepEqual(auto.inodes, before.inodes, "the listeners on the ports are not the stored ones");
  t.is(auto.links, 0, "an sk_lookup program is attached");
  // Stored again: a later crash still finds them.
  t.deepEqual(storedAfterAuto, before.stored);
});

test("then the unit says --steering bpf: refuses to start, naming the problem and the fix; after a stop, bpf steers", async (t) => {
  const { before, bpf, afterStop } = await result(t);
  t.like(bpf.first, { event: "start_failed", code: "BPF_UNAVAILABLE" }, JSON.stringify(bpf.first));
  t.regex(String(bpf.first.reason), /^--steering bpf: systemd's fd store holds the per-port listening sockets/);
  t.regex(String(bpf.first.reason), /; use --steering ports, or auto \(which falls back to ports\); to switch to BPF, stop the service/);
  t.deepEqual(bpf.events, ["listen_fds_received", "config_watch_started", "start_failed"]);
  // Decided before BPF is loaded; the stored sockets are left as they were, queues and all.
  t.is(bpf.links, 0);
  t.deepEqual(bpf.inodes, before.inodes);
  t.like(afterStop.first, { event: "supervisor_ready", mode: "bpf" }, JSON.stringify(afterStop.first));
  t.deepEqual(afterStop.echoes, [true, true]);
  t.is(afterStop.links, 1);
});
