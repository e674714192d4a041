// The native relay's resources against real sockets on loopback: 2,000
// connections, no fd leaks, the pipe pool's bound, the copy path (forced, and
// through a real EMFILE), failing add() and close(), and the process kept alive
// only while carrying. What it does with the bytes: native-relay.test.ts.
import test from "ava";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

import { Relay, type RelayEnd } from "../native/relay.js";
import { closeFd } from "../native/index.js";
import { isSyscallError } from "../common/errors.js";
import { until, within } from "./helpers/core.js";
import { describeFdChange, fdTable } from "./helpers/fd-table.js";
import { withNoFreeFd } from "./helpers/no-free-fd.js";
import { bothWaysIntact, closed, digestUntilEnd, Ledger, pairMakerFor, pipeCount, readExactly, readUntilEnd, relayFor, sha256, type Pair } from "./helpers/relay-pairs.js";

const ledger = new Ledger();
const maker = pairMakerFor(test);

test.serial("2,000 connections at once: each echoes, none holds a pipe while idle, each done() once", async (t) => {
  const relay = relayFor(t);
  const n = 2000;
  const pairs: Pair[] = [];
  for (let i = 0; i < n; i += 200) pairs.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, () => maker.pair()))));
  const pipesBefore = pipeCount();
  const ends = pairs.map((p) => ledger.add(relay, p).end);
  t.is(relay.size, n);
  for (const p of pairs) {
    p.peer.on("data", (d: Buffer) => p.peer.write(d));
    p.peer.on("end", () => p.peer.end());
    p.peer.resume();
  }
  await Promise.all(
    pairs.map((p, i) => {
      const echo = readExactly(p.client, `#${i}`);
      p.client.write(`#${i}`);
      return echo;
    }),
  );
  // Every connection has had a pipe each way (its bytes went through one) and is idle now.
  t.is(relay.stats().pipesBusy, 0, "idle connections hold pipes");
  t.true(pipeCount() - pipesBefore <= 2 * 64, `${pipeCount() - pipesBefore} pipe fds for ${n} idle connections`);
  for (const p of pairs) {
    p.client.resume();
    p.client.end();
  }
  const results = await Promise.all(ends);
  t.true(results.every((e, i) => e.reason === "closed" && e.bytesIn === `#${i}`.length && e.bytesOut === `#${i}`.length));
  t.is(relay.size, 0);
  t.is(relay.stats().open, 0);
  await Promise.all(pairs.flatMap((p) => [closed(p.client), closed(p.peer)]));
});

test.serial("no fd leaks, and the pool keeps at most maxFreePipes", async (t) => {
  const before = fdTable(process.pid);
  const maxFreePipes = 4;
  const relay = new Relay({ maxFreePipes });
  const pairs = await Promise.all(Array.from({ length: 12 }, () => maker.pair()));
  const ends = pairs.map((p) => ledger.add(relay, p).end);
  // More than the kernel holds between the relay and a target that does not read (see the toTarget test).
  const body = crypto.randomBytes(16 << 20);
  for (const p of pairs) p.client.end(body);
  // Targets not reading: every upload holds a full pipe at once, well past the pool's bound.
  await until(() => relay.stats().pipesBusy === pairs.length, 5000, "every upload paused with bytes in its pipe", 10);
  const s = relay.stats();
  t.is(pipeCount() - [...before.values()].filter((l) => l.startsWith("pipe:")).length, 2 * (s.pipesBusy + s.pipesFree));
  const digests = await Promise.all(pairs.map((p) => digestUntilEnd(p.peer)));
  t.true(digests.every((d) => d.bytes === body.length && d.sha256 === sha256(body)));
  for (const p of pairs) p.peer.end();
  t.true((await Promise.all(ends)).every((e) => e.reason === "closed"));
  await Promise.all(pairs.flatMap((p) => [closed(p.client), closed(p.peer)]));
  const after = relay.stats();
  t.deepEqual([after.pipesBusy, after.pipesFree, after.buffers], [0, maxFreePipes, 0]);
  t.is(pipeCount() - [...before.values()].filter((l) => l.startsWith("pipe:")).length, 2 * maxFreePipes, "pipes beyond the free list are closed");
  relay.close();
  const table = fdTable(process.pid);
  t.is(table.size, before.size, describeFdChange(before, table));
  t.deepEqual([...table.values()].sort(), [...before.values()].sort(), describeFdChange(before, table));
});

test.serial("messages are copied, bulk is spliced: a read that fills the 16 KiB copy buffer turns its direction to pipes", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  p.peer.on("data", (d: Buffer) => p.peer.write(d));
  p.peer.on("end", () => p.peer.end());
  p.peer.resume();
  // Round trips read as bytes (readExactly would set an encoding the bulk digest below cannot have).
  for (let i = 0; i < 20; i++) {
    const message = Buffer.from(`request ${i}`);
    const echo = new Promise<Buffer>((resolve) => {
      let got = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        got = Buffer.concat([got, d]);
        if (got.length < message.length) return;
        p.client.removeListener("data", onData);
        p.client.pause();
        resolve(got);
      };
      p.client.on("data", onData).resume();
    });
    p.client.write(message);
    t.deepEqual(await echo, message);
  }
  const small = relay.stats();
  t.true(small.copyReads >= 40, `${small.copyReads} copy reads for 20 round trips`);
  t.deepEqual([small.pipesBusy, small.pipesFree, small.buffers], [0, 0, 0], "a pipe was made for small messages");
  // 4 MiB each way: the first full read turns each direction to splice; what went through a pipe goes back to the pool.
  const bulk = crypto.randomBytes(4 << 20);
  const echoed = digestUntilEnd(p.client);
  p.client.end(bulk);
  t.deepEqual(await echoed, { sha256: sha256(bulk), bytes: bulk.length });
  const s = relay.stats();
  t.true(s.pipesFree >= 1, "no pipe was used for bulk");
  t.true(s.copyReads - small.copyReads < 64, `${s.copyReads - small.copyReads} copy reads for 8 MiB`);
  t.like(await end, { reason: "closed" });
});

test.serial("the copy path (forceCopy): an idle connection holds no buffer; 8 MiB each way, half-close, exact counts", async (t) => {
  const relay = relayFor(t, { forceCopy: true, maxFreePipes: 0 });
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  const hello = once(p.peer.resume(), "data");
  p.client.write("x");
  t.deepEqual((await hello)[0], Buffer.from("x"));
  p.peer.pause();
  await until(() => relay.stats().buffers === 0, 2000, "the copy buffer given back once empty", 10);
  t.true(relay.stats().copyReads > 0);
  const up = crypto.randomBytes(8 << 20);
  const down = crypto.randomBytes(8 << 20);
  const atPeer = digestUntilEnd(p.peer);
  p.client.end(up);
  t.deepEqual(await atPeer, { sha256: sha256(up), bytes: up.length });
  const atClient = digestUntilEnd(p.client);
  p.peer.end(down);
  t.deepEqual(await atClient, { sha256: sha256(down), bytes: down.length });
  t.deepEqual(await end, { reason: "closed", bytesIn: up.length + 1, bytesOut: down.length });
  const s = relay.stats();
  t.deepEqual([s.buffers, s.pipesBusy, s.pipesFree], [0, 0, 0]);
});

test.serial("the copy path for real: pipe2 fails with EMFILE and the bytes still go through", async (t) => {
  const relay = relayFor(t, { maxFreePipes: 0 });
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  await withNoFreeFd(() => bothWaysIntact(t, p, end, 1 << 20));
  const s = relay.stats();
  t.true(s.pipeFailures > 0, "pipe2 was refused");
  t.true(s.copyReads > 0);
  t.deepEqual([s.buffers, s.pipesBusy], [0, 0]);
});

test.serial("a failing add() throws a SyscallError and leaves both fds open and the caller's", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const devNull = fs.openSync("/dev/null", "r");
  try {
    // epoll refuses a non-socket; once as the client (nothing registered yet), once as the target (the client's registration undone).
    for (const [c, tg] of [[devNull, p.targetFd], [p.clientFd, devNull]] as const) {
      const err = t.throws(() => relay.add(c, tg, { idleTimeoutMs: null }, () => t.fail("done() for a failed add()")));
      t.true(isSyscallError(err) && err.code === "EPERM" && err.syscall === "epoll_ctl", String(err));
    }
    t.is(relay.size, 0);
    t.throws(() => relay.add(p.clientFd, p.clientFd, { idleTimeoutMs: null }, () => {}), { instanceOf: TypeError });
    t.throws(() => relay.add(p.clientFd, p.targetFd, { idleTimeoutMs: 0 }, () => {}), { instanceOf: RangeError });
  } finally {
    closeFd(devNull);
  }
  // Still open, still connected: the same fds can be carried after all.
  const { end } = ledger.add(relay, p);
  // An fd the relay carries already, as either side of another add(): EEXIST, and the carried one is untouched.
  const q = await maker.pair();
  for (const [c, tg] of [[p.clientFd, q.targetFd], [q.clientFd, p.targetFd]] as const) {
    const err = t.throws(() => relay.add(c, tg, { idleTimeoutMs: null }, () => t.fail("done() for a failed add()")));
    t.true(isSyscallError(err) && err.code === "EEXIST", String(err));
  }
  const qEnd = ledger.add(relay, q).end;
  const up = readUntilEnd(p.peer);
  const down = readUntilEnd(p.client);
  p.client.end("after");
  p.peer.end("all");
  t.deepEqual([await up, await down], ["after", "all"]);
  t.is((await end).reason, "closed");
  q.client.end();
  q.peer.end();
  t.is((await qEnd).reason, "closed");
});

test.serial("close() refuses while connections are open; a closed relay takes no more", async (t) => {
  const relay = new Relay();
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  t.throws(() => relay.close(), { code: "ERR_RELAY_BUSY" });
  relay.shutdown(2 ** 40); // no such id: nothing
  relay.shutdownAll();
  t.is((await end).reason, "shutdown");
  relay.close();
  relay.close();
  const q = await maker.pair();
  t.throws(() => relay.add(q.clientFd, q.targetFd, { idleTimeoutMs: null }, () => {}), { code: "ERR_RELAY_CLOSED" });
  closeFd(q.clientFd);
  closeFd(q.targetFd);
});

test.serial("the relay keeps its process alive only while it carries a connection", async (t) => {
  const servers = [net.createServer(), net.createServer()];
  const accepted = servers.map((s) => once(s, "connection").then(([c]) => c as net.Socket));
  for (const s of servers) s.listen(0, "127.0.0.1");
  await Promise.all(servers.map((s) => once(s, "listening")));
  const script = fileURLToPath(new URL("./helpers/relay-alone.js", import.meta.url));
  const child = spawn(process.execPath, [script, ...servers.map((s) => String((s.address() as net.AddressInfo).port))], { stdio: ["ignore", "pipe", "inherit"] });
  t.teardown(() => {
    child.kill("SIGKILL");
    servers.forEach((s) => s.close());
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = once(child, "exit");
  const [a, b] = await Promise.all(accepted);
  await until(() => out.includes("ready\n"), 5000, "the child's relay to carry the connection");
  // Nothing but the relay holds the child: without it, it exits before its unref'd timer says "alive".
  await until(() => out.includes("alive\n") || child.exitCode !== null, 5000, "the child to say alive or exit");
  t.is(child.exitCode, null);
  const through = readExactly(b!, "x");
  a!.write("x");
  await through;
  a!.end();
  b!.end();
  const [code] = (await within(exited, 5000, "the child exits by itself once done() has run")) as [number];
  t.is(code, 0);
  t.deepEqual(JSON.parse(out.split("\n")[2]!) as RelayEnd, { reason: "closed", bytesIn: 1, bytesOut: 0 });
});

test.serial("done() ran exactly once per add(), never within it", (t) => {
  t.deepEqual(ledger.problems, []);
  t.true(ledger.adds > 2000);
  t.is(ledger.dones, ledger.adds);
});
