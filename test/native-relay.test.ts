// The native relay (native/relay*.c) against real sockets on loopback: the
// proxy-side fds are taken out of Node as the worker does, and the test's
// client and target talk through the relay. What it does with the bytes:
// both ways, half-closes, resets, idle timeouts, shutdown, bytes given first,
// IPv6. Its resources (fds, pipes, memory, limits): native-relay-resources.test.ts.
import test, { type ExecutionContext } from "ava";
import crypto from "node:crypto";

import type { RelayEnd, RelayOptions } from "../native/relay.js";
import { until, within } from "./helpers/core.js";
import { beforeEnd, bothWaysIntact, closed, digestUntilEnd, hungUp, Ledger, pairMakerFor, PairMaker, readExactly, readUntilEnd, relayFor, sha256, untilPaused } from "./helpers/relay-pairs.js";

const ledger = new Ledger();
const maker = pairMakerFor(test);

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
  await bothWaysIntact(t, p, end, bytes);
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

test.serial("done() ran exactly once per add(), never within it", (t) => {
  t.deepEqual(ledger.problems, []);
  t.true(ledger.adds > 0);
  t.is(ledger.dones, ledger.adds);
});
