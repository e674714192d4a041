// BPF mode refuses a port another socket already listens on, like ports mode's
// EADDRINUSE (scenario test/scenarios/bpf-busy-port.ts, run in `unshare -n`):
// the sk_lookup program runs before the kernel's listener lookup, so steering
// such a port would silently steal it.
import test, { type ExecutionContext } from "ava";

import { scenarioResult } from "./helpers/netns.js";
import type { Refused } from "./scenarios/bpf-busy-port.js";

/** A refused run, and the sockets it left listening (none). */
interface RefusedRun extends Refused {
  leftListening: string[];
}
interface Result {
  start: RefusedRun;
  reload: {
    ended: { event?: string; code?: string; reason?: string };
    ctl: { code: number | null; stderr: string };
    healthz: number;
    generation: { before: number; after: number };
    oldTags: string[];
    busyTag: string;
    cTag: string;
    steeringUpdates: number;
    generationsStarted: number;
    socketsBefore: string[];
    socketsAfter: string[];
  };
  loop: RefusedRun;
  move: {
    ended: { event?: string; reason?: string };
    updated?: Record<string, unknown>;
    movedTags: string[];
    ownPorts: number[];
    ownEnded: { event?: string; reason?: string };
    ownTags: string[];
  };
}

/** The wording ports mode uses for a bind() that fails, matched in both modes. */
const IN_USE = /cannot listen on .*EADDRINUSE/;

let run: Promise<Result> | undefined;
const result = (t: ExecutionContext): Promise<Result> => (run ??= scenarioResult<Result>(t, "bpf-busy-port"));

test.serial("run --steering bpf with a port another socket listens on exits non-zero, naming it; the listener still answers", async (t) => {
  const { start } = await result(t);
  t.log(`exited ${start.code} after ${start.ms} ms: ${start.stderr.trim()}`);
  t.is(start.code, 1, `signal ${start.signal}; events ${start.events.join(",")}`);
  t.regex(start.stderr, /^switchyard: cannot listen on 127\.0\.0\.1:7777 \(app a\): EADDRINUSE \(another socket listens there\)\n$/);
  t.regex(start.reason ?? "", IN_USE);
  t.false(start.events.includes("supervisor_ready"));
  t.false(start.events.includes("steering_updated"), "the port map was written");
  t.is(start.probeTag, "plain");
  t.deepEqual(start.leftListening, []);
});

test.serial("a reload adding a busy port is rolled back: old ports served, the port still reaches its listener", async (t) => {
  const { reload: r } = await result(t);
  t.like(r.ended, { event: "reload_failed", code: "LISTEN_FAILED" });
  t.regex(r.ended.reason ?? "", /^cannot listen on 127\.0\.0\.1:7777 \(app a\): EADDRINUSE \(another socket listens there\)$/);
  t.is(r.ctl.code, 1);
  t.regex(r.ctl.stderr, /ctl reload: failed: LISTEN_FAILED: cannot listen on 127\.0\.0\.1:7777 \(app a\): EADDRINUSE/);
  t.is(r.healthz, 200);
  t.deepEqual(r.generation, { before: 1, after: 1 });
  // Refused in prepare: no generation started, the port map untouched.
  t.is(r.generationsStarted, 0);
  t.is(r.steeringUpdates, 0);
  t.deepEqual(r.oldTags, new Array<string>(20).fill("a"));
  t.is(r.busyTag, "plain");
  t.is(r.cTag, "error:ECONNREFUSED");
  // App c's socket, opened for the reload, was closed again.
  t.deepEqual(r.socketsAfter, r.socketsBefore);
});

test.serial("a target and the admin inside an app's port ranges are refused: no steering loop", async (t) => {
  const { loop } = await result(t);
  t.log(`exited ${loop.code} after ${loop.ms} ms: ${loop.stderr.trim()}`);
  t.is(loop.code, 1, `signal ${loop.signal}; events ${loop.events.join(",")}`);
  t.regex(loop.stderr, IN_USE);
  t.true(loop.stderr.includes("127.0.0.1:6001 (app x)"), loop.stderr);
  t.true(loop.stderr.includes("127.0.0.1:9901 (app x)"), loop.stderr);
  t.false(loop.events.includes("supervisor_ready"));
  t.is(loop.probeTag, "t6001");
  t.deepEqual(loop.leftListening, []);
});

test.serial("ports moved between our apps and a port our own app socket uses are no conflict", async (t) => {
  const { move: m } = await result(t);
  // 8101 (kept) and 8106 (moved) were bound by another socket after we steered them: not new, not checked.
  t.is(m.ended.event, "reload_succeeded", m.ended.reason);
  t.like(m.updated, { ports_set: 10, ports_moved: 10, ports_removed: 0, sockets: 2 });
  t.deepEqual(m.movedTags, new Array<string>(5).fill("b"));
  t.is(m.ownPorts.length, 2, `app sockets: ${m.ownPorts.join(" ")}`);
  t.is(m.ownEnded.event, "reload_succeeded", m.ownEnded.reason);
  t.deepEqual(m.ownTags, ["b", "b"]);
});
