// Nothing of the BPF steering outlives the supervisor (scenario
// test/scenarios/bpf-cleanup.ts, run in `unshare -n`): after SIGTERM and after
// SIGKILL, no sk_lookup link is attached to the namespace and the program and
// maps seen while it ran are gone (nothing is pinned).
import test, { type ExecutionContext } from "ava";

import { scenarioResult } from "./helpers/netns.js";

interface Stopped {
  exit: { code: number | null; signal: string | null };
  whileRunning: { links: { id: number; prog_id: number }[]; prog: { type: string; name: string; maps: number } | null; workers: number; answered: string; clientAddr: string };
  atExit: { links: unknown[]; workersAlive: number };
  afterWorkers: { links: unknown[]; answered: string; listening: string[] };
  left: { prog: boolean; maps: number[] };
}
interface Result {
  before: unknown[];
  sigterm: Stopped;
  sigkill: Stopped;
}

let run: Promise<Result> | undefined;
const result = (t: ExecutionContext): Promise<Result> => (run ??= scenarioResult<Result>(t, "bpf-cleanup"));

function ranWithBpf(t: ExecutionContext, r: Stopped): void {
  t.is(r.whileRunning.links.length, 1, "one sk_lookup link while running");
  t.like(r.whileRunning.prog, { type: "sk_lookup", name: "steer" });
  t.true((r.whileRunning.prog?.maps ?? 0) >= 3, "ports, sockets and counters maps");
  t.is(r.whileRunning.workers, 2);
  t.is(r.whileRunning.answered, "a");
  t.is(r.whileRunning.clientAddr, "127.0.0.1", "access log client_addr of an IPv4 client");
}

function nothingLeft(t: ExecutionContext, r: Stopped): void {
  t.deepEqual(r.atExit.links, [], "link still attached when the supervisor had exited");
  t.deepEqual(r.afterWorkers.links, []);
  t.deepEqual(r.left, { prog: false, maps: [] }, "program or maps still loaded");
  // No steering and no socket left: the port is the kernel's again, and nothing listens on it.
  t.is(r.afterWorkers.answered, "error:ECONNREFUSED");
  t.deepEqual(r.afterWorkers.listening, []);
}

test.serial("SIGTERM: link, program and maps are gone", async (t) => {
  const r = await result(t);
  t.deepEqual(r.before, [], "the fresh namespace had a link already");
  ranWithBpf(t, r.sigterm);
  t.deepEqual(r.sigterm.exit, { code: 0, signal: null });
  // The supervisor waits for its workers before it exits.
  t.is(r.sigterm.atExit.workersAlive, 0);
  nothingLeft(t, r.sigterm);
});

test.serial("SIGKILL: link, program and maps are gone once the workers have exited", async (t) => {
  const r = await result(t);
  ranWithBpf(t, r.sigkill);
  t.deepEqual(r.sigkill.exit, { code: null, signal: "SIGKILL" });
  t.log(`workers still running when the supervisor had exited: ${r.sigkill.atExit.workersAlive}`);
  nothingLeft(t, r.sigkill);
});
