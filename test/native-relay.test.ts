// The native relay (native/relay*.c) against real sockets on loopback: the
// proxy-side fds are taken out of Node as the worker does, and the test's
// client and target talk through the relay.
import test, { type ExecutionContext } from "ava";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

import { Relay, type RelayEnd, type RelayOptions } from "../native/relay.js";
import { closeFd, dupFd } from "../native/index.js";
import { isSyscallError } from "../common/errors.js";
import { until, within } from "./helpers/core.js";
import { describeFdChange, fdTable } from "./helpers/fd-table.js";
import { beforeEnd, closed, digestUntilEnd, hungUp, Ledger, PairMaker, readExactly, readUntilEnd, type Pair } from "./helpers/relay-pairs.js";

const ledger = new Ledger();
let maker: PairMaker;

test.before(async () => {
  maker = await PairMaker.start();
});

test.after.always(async () => {
  await maker?.close();
});

const sha256 = (...parts: Buffer[]): string => {
  const h = crypto.createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

const pipeCount = (): number => [...fdTable(process.pid).values()].filter((l) => l.startsWith("pipe:")).length;

/** A relay closed at the end of the test (its connections must all have ended by then). */
function relayFor(t: ExecutionContext, opts?: ConstructorParameters<typeof Relay>[0]): Relay {
  const relay = new Relay(opts);
  t.timeout(20_000); // a connection the relay mishandles would otherwise hang the file
  t.teardown(() => {
    if (relay.size > 0) relay.shutdownAll();
    else relay.close();
  });
  return relay;
}

/** Until a direction is paused: bytes sit in a pipe because its destination does not read. */
const untilPaused = (relay: Relay): Promise<void> => until(() => relay.stats().pipesBusy >= 1, 5000, "a direction paused with bytes in its pipe", 10);

test.serial("a few bytes both ways, then both ends close: closed with exact counts", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  const toPeer = readExactly(p.peer, "ping");
  p.client.write("ping");
  await toPeer;
  const toClient = readUntilEnd(p.client);
  p.peer.end("pong!");
  t.is(await toClient, "pong!");
  t.is(relay.size, 1, "the client has not ended its side yet");
  const peerGot = readUntilEnd(p.peer);
  p.client.end();
  t.is(await peerGot, "");
  t.deepEqual(await end, { reason: "closed", bytesIn: 4, bytesOut: 5 });
  await Promise.all([closed(p.client), closed(p.peer)]);
  t.is(relay.size, 0);
  t.deepEqual(relay.stats().open, 0);
});

/** `bytes` random bytes each way at once, both ends finishing: each side gets the other's intact, the counts exact. */
async function bothWays(t: ExecutionContext, bytes: number, opts?: RelayOptions): Promise<void> {
  const relay = relayFor(t, opts);
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  const up = crypto.randomBytes(bytes);
  const down = crypto.randomBytes(bytes);
  const atPeer = digestUntilEnd(p.peer);
  const atClient = digestUntilEnd(p.client);
  p.client.end(up);
  p.peer.end(down);
  t.deepEqual(await atPeer, { sha256: sha256(up), bytes: up.length });
  t.deepEqual(await atClient, { sha256: sha256(down), bytes: down.length });
  t.deepEqual(await end, { reason: "closed", bytesIn: up.length, bytesOut: down.length });
}

test.serial("64 MiB each way at once arrive intact", (t) => bothWays(t, 64 << 20));

test.serial("pipeSize: 1 MiB pipes carry 16 MiB each way intact", (t) => bothWays(t, 16 << 20, { pipeSize: 1 << 20 }));

test.serial("half-close: the client ends first, the target answers after and then ends", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  let ended = false;
  void end.then(() => (ended = true));
  const request = readUntilEnd(p.peer);
  p.client.end("request");
  t.is(await request, "request", "the target sees the client's FIN after its bytes");
  const reply = readUntilEnd(p.client);
  p.peer.write("part one, ");
  await new Promise((r) => setImmediate(r));
  t.false(ended, "a half-closed connection stays open");
  p.peer.end("part two");
  t.is(await reply, "part one, part two");
  t.deepEqual(await end, { reason: "closed", bytesIn: 7, bytesOut: 18 });
});

test.serial("half-close: the target ends first, the client still sends and then ends", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  const greeting = readUntilEnd(p.client);
  p.peer.end("bye");
  t.is(await greeting, "bye");
  t.is(relay.size, 1);
  const upload = readUntilEnd(p.peer);
  p.client.write("still ");
  p.client.end("sending");
  t.is(await upload, "still sending");
  t.deepEqual(await end, { reason: "closed", bytesIn: 13, bytesOut: 3 });
});

test.serial("a client reset ends it as client_error; the target's socket is closed", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  const toPeer = readExactly(p.peer, "hi");
  p.client.write("hi");
  await toPeer;
  p.client.resetAndDestroy();
  const e = await end;
  t.is(e.reason, "client_error");
  t.is(e.errno, "ECONNRESET");
  t.is(e.bytesIn, 2);
  await within(hungUp(p.peer), 2000, "the target's connection closed");
});

test.serial("a target reset ends it as target_error; the client's socket is closed", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  const toClient = readExactly(p.client, "hello");
  p.peer.write("hello");
  await toClient;
  p.peer.resetAndDestroy();
  const e = await end;
  t.deepEqual(e, { reason: "target_error", errno: "ECONNRESET", bytesIn: 0, bytesOut: 5 });
  await within(hungUp(p.client), 2000, "the client's connection closed");
});

test.serial("a client reset while its upload is paused (the target does not read) is noticed within 1 s", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  p.client.write(Buffer.alloc(32 << 20)); // far more than the socket buffers and the pipe hold
  await untilPaused(relay);
  t.true(p.client.writableLength > 0, "the client still has bytes to send: the relay stopped reading it");
  const at = performance.now();
  p.client.resetAndDestroy();
  const e = await within(end, 1000, "the relay noticed the reset");
  t.is(e.reason, "client_error");
  t.log(`noticed after ${(performance.now() - at).toFixed(1)} ms`);
});

test.serial("a target reset while its download is paused (the client does not read) is noticed within 1 s", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  p.client.pause();
  const { end } = ledger.add(relay, p);
  p.peer.write(Buffer.alloc(32 << 20));
  await untilPaused(relay);
  t.true(p.peer.writableLength > 0, "the target still has bytes to send: the relay stopped reading it");
  p.peer.resetAndDestroy();
  const e = await within(end, 1000, "the relay noticed the reset");
  t.is(e.reason, "target_error");
});

test.serial("idle timeout: not while bytes move, then after that long of silence", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  const idleMs = 500;
  const { end } = ledger.add(relay, p, { idleTimeoutMs: idleMs });
  let ended = false;
  void end.then(() => (ended = true));
  let last = 0;
  // Five round trips 150 ms apart: longer than idleMs in all, never that long quiet (with room for a loaded machine).
  for (let i = 0; i < 5; i++) {
    const echo = readExactly(p.client, `${i}`);
    const got = readExactly(p.peer, `${i}`);
    p.client.write(`${i}`);
    await beforeEnd(got, end);
    p.peer.write(`${i}`);
    await beforeEnd(echo, end);
    last = performance.now();
    t.false(ended, `ended during round trip ${i}`);
    await new Promise((r) => setTimeout(r, 150));
  }
  const e = await end;
  const quiet = performance.now() - last;
  t.deepEqual(e, { reason: "idle_timeout", bytesIn: 5, bytesOut: 5 });
  t.true(quiet >= idleMs - 50 && quiet < idleMs + 1000, `ended after ${quiet.toFixed(0)} ms of silence`);
  await within(Promise.all([hungUp(p.client), hungUp(p.peer)]), 2000, "both ends closed");
});

test.serial("idle timeout waits for a slow reader still receiving, then fires once all is delivered", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  p.client.pause();
  const idleMs = 200;
  const body = crypto.randomBytes(16 << 20); // before add(): on a loaded machine this alone can take longer than idleMs
  const { end } = ledger.add(relay, p, { idleTimeoutMs: idleMs });
  let ended = false;
  let endedAs: RelayEnd | undefined;
  void end.then((e) => {
    ended = true;
    endedAs = e;
  });
  p.peer.write(body);
  await untilPaused(relay).catch((e: unknown) => {
    throw new Error(`${String(e)} (ended: ${ended ? JSON.stringify(endedAs) : "no"})`);
  });
  // Nothing moves for three idle periods, but bytes are on their way: a slow reader, not silence.
  await new Promise((r) => setTimeout(r, 3 * idleMs));
  t.false(ended, "timed out a connection whose reader was still receiving");
  t.true(relay.stats().pipesBusy >= 1);
  const hash = crypto.createHash("sha256");
  let got = 0;
  const all = new Promise<void>((resolve) => {
    p.client.on("data", (d: Buffer) => {
      hash.update(d);
      got += d.length;
      if (got === body.length) resolve();
    });
    p.client.resume();
  });
  await beforeEnd(all, end);
  t.false(ended, "still open when the last byte arrived");
  t.is(hash.digest("hex"), sha256(body));
  t.deepEqual(await end, { reason: "idle_timeout", bytesIn: 0, bytesOut: body.length });
});

test.serial("shutdown(id) ends one connection as shutdown, and only once", async (t) => {
  const relay = relayFor(t);
  const [a, b] = [await maker.pair(), await maker.pair()];
  const ea = ledger.add(relay, a);
  const eb = ledger.add(relay, b);
  const toPeer = readExactly(a.peer, "abc");
  a.client.write("abc");
  await toPeer;
  relay.shutdown(ea.id);
  t.deepEqual(await ea.end, { reason: "shutdown", bytesIn: 3, bytesOut: 0 });
  await within(Promise.all([hungUp(a.client), hungUp(a.peer)]), 2000, "both ends of the shut connection closed");
  relay.shutdown(ea.id); // ended: nothing
  t.is(relay.size, 1);
  const echo = readExactly(b.client, "still here");
  b.peer.write("still here");
  await beforeEnd(echo, eb.end);
  b.client.end();
  b.peer.end();
  t.is((await eb.end).reason, "closed");
});

test.serial("shutdown(id) at once after add(): every one ends as shutdown, its sockets closed", async (t) => {
  const relay = relayFor(t);
  const pairs = await Promise.all(Array.from({ length: 300 }, () => maker.pair()));
  // The thread takes adds and shutdowns while these calls keep coming: some land between the two.
  const ends = pairs.map((p) => {
    const { id, end } = ledger.add(relay, p);
    relay.shutdown(id);
    return end;
  });
  t.true((await Promise.all(ends)).every((e) => e.reason === "shutdown"));
  await within(Promise.all(pairs.flatMap((p) => [hungUp(p.client), hungUp(p.peer)])), 5000, "every socket hung up");
  t.is(relay.stats().open, 0);
});

test.serial("shutdownAll() ends every connection added before it, not one added after", async (t) => {
  const relay = relayFor(t);
  const pairs = await Promise.all([maker.pair(), maker.pair(), maker.pair()]);
  const ends = pairs.map((p) => ledger.add(relay, p).end);
  const late = await maker.pair();
  relay.shutdownAll();
  const after = ledger.add(relay, late);
  t.deepEqual(await Promise.all(ends), pairs.map(() => ({ reason: "shutdown", bytesIn: 0, bytesOut: 0 })));
  const echo = readExactly(late.client, "alive");
  late.peer.write("alive");
  await beforeEnd(echo, after.end);
  t.is(relay.size, 1);
  relay.shutdownAll();
  t.is((await after.end).reason, "shutdown");
});

test.serial("toTarget and toClient go first, in order, before bytes that were already waiting", async (t) => {
  const relay = relayFor(t);
  const p = await maker.pair();
  // More than the kernel holds for a target that does not read (a 4 MiB send buffer at most,
  // net.ipv4.tcp_wmem, and its receive buffer): a remainder is kept.
  const header = crypto.randomBytes(16 << 20);
  p.client.write("tail");
  p.peer.write("world");
  // Written to the kernel (loopback delivers within the write): waiting in the proxy's receive queues.
  t.deepEqual([p.client.writableLength, p.peer.writableLength], [0, 0]);
  const { end } = ledger.add(relay, p, { idleTimeoutMs: null, toTarget: header, toClient: Buffer.from("hello ") });
  await readExactly(p.client, "hello world");
  await until(() => relay.stats().buffers === 1, 5000, "toClient sent, toTarget sent in part and kept", 10);
  const atPeer = digestUntilEnd(p.peer);
  p.client.end();
  t.deepEqual(await atPeer, { sha256: sha256(header, Buffer.from("tail")), bytes: header.length + 4 });
  p.peer.end();
  t.deepEqual(await end, { reason: "closed", bytesIn: header.length + 4, bytesOut: 11 });
  t.is(relay.stats().buffers, 0);
});

test.serial("IPv6: bytes both ways over ::1", async (t) => {
  let v6: PairMaker;
  try {
    v6 = await PairMaker.start("::1");
  } catch (e) {
    t.log(`skipped: no IPv6 loopback (${String(e)})`);
    t.pass();
    return;
  }
  try {
    const relay = relayFor(t);
    const p = await v6.pair();
    const { end } = ledger.add(relay, p);
    const up = readUntilEnd(p.peer);
    const down = readUntilEnd(p.client);
    p.client.end("six");
    p.peer.end("over six");
    t.deepEqual([await up, await down], ["six", "over six"]);
    t.deepEqual(await end, { reason: "closed", bytesIn: 3, bytesOut: 8 });
  } finally {
    await v6.close();
  }
});

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

/** Runs `fn` with RLIMIT_NOFILE lowered to what is open now and every lower fd taken: a new fd fails with EMFILE. */
async function withNoFreeFd<T>(fn: () => Promise<T>): Promise<T> {
  const [soft, hard] = execFileSync("prlimit", ["--pid", String(process.pid), "--nofile", "--raw", "--noheadings", "--output", "SOFT,HARD"], { encoding: "utf8" }).trim().split(/\s+/);
  const highest = Math.max(...fdTable(process.pid).keys());
  execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${highest + 8}:${hard}`]);
  const filler: number[] = [];
  const some = fs.openSync("/dev/null", "r");
  filler.push(some);
  try {
    for (;;) {
      try {
        filler.push(dupFd(some));
      } catch (e) {
        if (isSyscallError(e) && e.code === "EMFILE") break;
        throw e;
      }
    }
    return await fn();
  } finally {
    filler.forEach(closeFd);
    execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${soft}:${hard}`]);
  }
}

test.serial("the copy path for real: pipe2 fails with EMFILE and the bytes still go through", async (t) => {
  const relay = relayFor(t, { maxFreePipes: 0 });
  const p = await maker.pair();
  const { end } = ledger.add(relay, p);
  const up = crypto.randomBytes(1 << 20);
  const down = crypto.randomBytes(1 << 20);
  await withNoFreeFd(async () => {
    const atPeer = digestUntilEnd(p.peer);
    const atClient = digestUntilEnd(p.client);
    p.client.end(up);
    p.peer.end(down);
    t.deepEqual(await atPeer, { sha256: sha256(up), bytes: up.length });
    t.deepEqual(await atClient, { sha256: sha256(down), bytes: down.length });
    t.deepEqual(await end, { reason: "closed", bytesIn: up.length, bytesOut: down.length });
  });
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
  // Nothing but the relay holds the child: it would be gone by now if the relay did not keep it.
  await new Promise((r) => setTimeout(r, 300));
  t.is(child.exitCode, null);
  const through = readExactly(b!, "x");
  a!.write("x");
  await through;
  a!.end();
  b!.end();
  const [code] = (await within(exited, 5000, "the child exits by itself once done() has run")) as [number];
  t.is(code, 0);
  t.deepEqual(JSON.parse(out.split("\n")[1]!) as RelayEnd, { reason: "closed", bytesIn: 1, bytesOut: 0 });
});

test.serial("done() ran exactly once per add(), never within it", (t) => {
  t.deepEqual(ledger.problems, []);
  t.true(ledger.adds > 2000);
  t.is(ledger.dones, ledger.adds);
});
