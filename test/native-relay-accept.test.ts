// The relay's thread accepting and connecting (native/relay_accept.c,
// native/relay_dial.c) against real sockets on loopback: what listen() hands
// over, dial() and redial() after refusals and timeouts, unlisten() leaving
// the kernel's queue to whoever accepts next, a client reset while it waits,
// refusals when out of fds, and no fd left behind.
import test, { type ExecutionContext } from "ava";
import net from "node:net";
import fs from "node:fs";
import { once } from "node:events";
import { spawnSync } from "node:child_process";

import type { Accepted, DialFailure, Relay, RelayEnd, RelayWatcher } from "../native/relay.js";
import { closeFd, dupFd, listenTcp, setBlocking, socketName } from "../native/index.js";
import { until, within } from "./helpers/core.js";
import { fdTable } from "./helpers/fd-table.js";
import { withNoFreeFd } from "./helpers/no-free-fd.js";
import { readUntilEnd, relayFor } from "./helpers/relay-pairs.js";

/** Records what the relay reports for one dialled connection. */
class Watch implements RelayWatcher {
  readonly failures: [DialFailure, string][] = [];
  connects = 0;
  /** connects when done() came. */
  connectsAtEnd = -1;
  readonly end: Promise<RelayEnd>;
  private resolve!: (e: RelayEnd) => void;
  constructor(private readonly onFailure?: (reason: DialFailure) => void) {
    this.end = new Promise((r) => (this.resolve = r));
  }
  connected(): void {
    this.connects += 1;
  }
  dialFailed(reason: DialFailure, code: string): void {
    this.failures.push([reason, code]);
    this.onFailure?.(reason);
  }
  done(end: RelayEnd): void {
    this.connectsAtEnd = this.connects;
    this.resolve(end);
  }
}

/** A listening socket of the test's own (as the supervisor's would be), closed at the end. */
function listeningFd(t: ExecutionContext, backlog = 128): { fd: number; port: number } {
  const fd = listenTcp("127.0.0.1", 0, backlog);
  t.teardown(() => closeFd(fd));
  return { fd, port: socketName(fd).port };
}

/** A target that answers each connection with "<tag>:" and then echoes. */
async function echoTarget(t: ExecutionContext, tag: string): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.write(`${tag}:`);
    s.pipe(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.teardown(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** A listener whose queue is full (backlog 0 holds one): the kernel drops further SYNs, and a connect waits. */
async function fullListener(t: ExecutionContext): Promise<{ port: number }> {
  const full = listeningFd(t, 0);
  const filler = net.connect(full.port, "127.0.0.1");
  t.teardown(() => filler.destroy());
  await once(filler, "connect");
  return full;
}

/** A relay, a client it accepted, and a target that will not answer. */
async function acceptedWithSilentTarget(t: ExecutionContext): Promise<{ relay: Relay; full: { port: number }; client: net.Socket; a: Accepted }> {
  const relay = relayFor(t);
  const l = listeningFd(t);
  const full = await fullListener(t);
  const q = acceptQueue(relay, l.fd, false);
  const client = net.connect(l.port, "127.0.0.1");
  return { relay, full, client, a: await q.next() };
}

/** Accepted connections, in order, as a queue the test waits on. */
function acceptQueue(relay: Relay, fd: number, wantLocal: boolean): { next(): Promise<Accepted>; refused: string[]; tag: number } {
  const waiting: Accepted[] = [];
  const refused: string[] = [];
  let wake: (() => void) | undefined;
  const tag = relay.listen(fd, wantLocal, {
    accepted: (a) => {
      waiting.push(a);
      wake?.();
    },
    refused: (code) => refused.push(code),
  });
  return {
    tag,
    refused,
    async next() {
      while (waiting.length === 0) await new Promise<void>((r) => (wake = r));
      return waiting.shift()!;
    },
  };
}

test.serial("listen + dial: addresses handed over, the header first, bytes both ways, connected once, closed with exact counts", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  const targetPort = await echoTarget(t, "T");
  const q = acceptQueue(relay, l.fd, true);
  const client = net.connect(l.port, "127.0.0.1");
  await once(client, "connect");
  const a = await q.next();
  t.deepEqual([a.address, a.port, a.localAddress, a.localPort], ["127.0.0.1", client.localPort, "127.0.0.1", l.port]);
  const w = new Watch();
  relay.dial(a.fd, "127.0.0.1", targetPort, { connectTimeoutMs: 2000, idleTimeoutMs: null, toTarget: Buffer.from("HDR|") }, w);
  const reply = readUntilEnd(client);
  client.end("hello");
  t.is(await reply, "T:HDR|hello");
  t.deepEqual(await w.end, { reason: "closed", bytesIn: 9, bytesOut: 11 });
  t.is(w.connects, 1);
  t.deepEqual(w.failures, []);
});

test.serial("a connect's success reaches JS by itself when nothing else wakes it, and always before the end", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  // A target that accepts and says nothing: after the connect, no byte, no end, no accept.
  const held: net.Socket[] = [];
  const silent = net.createServer((s) => held.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  t.teardown(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const q = acceptQueue(relay, l.fd, false);
  const client = net.connect(l.port, "127.0.0.1");
  t.teardown(() => client.destroy());
  const a = await q.next();
  const w = new Watch();
  relay.dial(a.fd, "127.0.0.1", (silent.address() as net.AddressInfo).port, { connectTimeoutMs: 2000, idleTimeoutMs: null }, w);
  await until(() => w.connects === 1, 2000, "connected, with nothing else to deliver");
  // Short ones: the success and the end in the same few milliseconds, delivered in that order.
  const targetPort = await echoTarget(t, "E");
  const watches: Watch[] = [];
  for (let i = 0; i < 20; i++) {
    const c = net.connect(l.port, "127.0.0.1");
    const reply = readUntilEnd(c);
    c.end("x");
    const b = await q.next();
    const sw = new Watch();
    relay.dial(b.fd, "127.0.0.1", targetPort, { connectTimeoutMs: 2000, idleTimeoutMs: null }, sw);
    t.is(await reply, "E:x");
    await sw.end;
    watches.push(sw);
  }
  t.deepEqual(watches.map((sw) => sw.connectsAtEnd), watches.map(() => 1));
});

test.serial("a blocking listening socket (systemd's socket activation passes them so) is made non-blocking: one client alone is served", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  setBlocking(l.fd, true);
  const targetPort = await echoTarget(t, "S");
  const q = acceptQueue(relay, l.fd, false);
  const client = net.connect(l.port, "127.0.0.1");
  // A blocking accept(2) after this client would wait for the next one, and hold the thread.
  const a = await within(q.next(), 5000, "the only client accepted");
  const w = new Watch();
  relay.dial(a.fd, "127.0.0.1", targetPort, { connectTimeoutMs: 2000, idleTimeoutMs: null }, w);
  const reply = readUntilEnd(client);
  client.end("alone");
  t.is(await within(reply, 5000, "the reply"), "S:alone");
});

test.serial("without wantLocal no local address; an IPv6 target (with its interface) is dialled too", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  const server = net.createServer((s) => s.end("six")).listen(0, "::1");
  await once(server, "listening");
  t.teardown(() => server.close());
  const q = acceptQueue(relay, l.fd, false);
  const client = net.connect(l.port, "127.0.0.1");
  const a = await q.next();
  t.deepEqual([a.localAddress, a.localPort], [undefined, undefined]);
  const w = new Watch();
  // With an interface named, as a link-local target would be.
  relay.dial(a.fd, "::1%lo", (server.address() as net.AddressInfo).port, { connectTimeoutMs: 2000, idleTimeoutMs: null }, w);
  const reply = readUntilEnd(client);
  client.end();
  t.is(await reply, "six");
  t.is((await w.end).reason, "closed");
});

test.serial("a refused target: dialFailed(refused, ECONNREFUSED), the client waits, redial() reaches the next target with the header", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  const live = await echoTarget(t, "B");
  const q = acceptQueue(relay, l.fd, false);
  const client = net.connect(l.port, "127.0.0.1");
  client.write("early");
  const a = await q.next();
  // A port that refuses: a server's, closed again.
  const refusing = net.createServer().listen(0, "127.0.0.1");
  await once(refusing, "listening");
  const refusingPort = (refusing.address() as net.AddressInfo).port;
  await new Promise((r) => refusing.close(r));
  let id = -1;
  const w = new Watch(() => relay.redial(id, "127.0.0.1", live, 2000));
  id = relay.dial(a.fd, "127.0.0.1", refusingPort, { connectTimeoutMs: 2000, idleTimeoutMs: null, toTarget: Buffer.from("H|") }, w);
  const reply = readUntilEnd(client);
  await until(() => w.connects === 1, 5000, "connected after the redial");
  client.end("!");
  t.is(await reply, "B:H|early!");
  t.deepEqual(w.failures, [["refused", "ECONNREFUSED"]]);
  t.deepEqual(await w.end, { reason: "closed", bytesIn: 8, bytesOut: 10 });
});

test.serial("a target that never answers: dialFailed(timeout) after about connectTimeoutMs; shutdown() then closes the waiting client", async (t) => {
  const { relay, full, client, a } = await acceptedWithSilentTarget(t);
  let failedAt = 0;
  const started = Date.now();
  const w = new Watch(() => (failedAt = Date.now()));
  const id = relay.dial(a.fd, "127.0.0.1", full.port, { connectTimeoutMs: 300, idleTimeoutMs: null }, w);
  await until(() => w.failures.length === 1, 5000, "the connect timed out");
  t.deepEqual(w.failures, [["timeout", "ETIMEDOUT"]]);
  t.true(failedAt - started >= 250 && failedAt - started < 2000, `timed out after ${failedAt - started} ms`);
  const closedByRelay = once(client, "close");
  relay.shutdown(id);
  t.is((await w.end).reason, "shutdown");
  await within(closedByRelay, 5000, "the waiting client closed");
  t.is(w.connects, 0);
});

test.serial("a client that resets while its target is dialled ends as client_error", async (t) => {
  const { relay, full, client, a } = await acceptedWithSilentTarget(t);
  const w = new Watch();
  relay.dial(a.fd, "127.0.0.1", full.port, { connectTimeoutMs: 10_000, idleTimeoutMs: null }, w);
  client.resetAndDestroy();
  const end = await within(w.end, 5000, "the relay noticed the reset");
  t.deepEqual([end.reason, end.errno], ["client_error", "ECONNRESET"]);
});

test.serial("unlisten(): nothing more is accepted; what waits in the kernel's queue is there for the next to accept", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  const q = acceptQueue(relay, l.fd, false);
  const first = net.connect(l.port, "127.0.0.1");
  closeFd((await q.next()).fd);
  relay.unlisten(q.tag);
  const second = net.connect(l.port, "127.0.0.1");
  await once(second, "connect"); // the handshake completes in the kernel's queue
  // Another accepts it: a plain Node server on a copy of the same socket.
  const server = net.createServer((s) => s.end("taken over"));
  server.listen({ fd: dupFd(l.fd) });
  t.teardown(() => server.close());
  t.is(await readUntilEnd(second), "taken over");
  first.destroy();
});

test.serial("out of fds: a waiting connection is accepted into the reserve and closed at once, and the refusal counted", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  const q = acceptQueue(relay, l.fd, false);
  // Start the thread (and its reserve fd) before the table fills.
  const warm = net.connect(l.port, "127.0.0.1");
  closeFd((await q.next()).fd);
  warm.destroy();
  // One fd free: the client's socket takes it, and the relay's accept(2) finds none.
  await withNoFreeFd(
    async () => {
      const client = net.connect(l.port, "127.0.0.1");
      client.on("error", () => undefined);
      await within(once(client, "close"), 5000, "the refused client is closed");
      await until(() => q.refused.length >= 1, 5000, "the refusal reported");
    },
    { leave: 1 },
  );
  t.is(q.refused[0], "EMFILE");
  // Accepting again once fds are free.
  const after = net.connect(l.port, "127.0.0.1");
  const a = await within(q.next(), 5000, "accepted again");
  closeFd(a.fd);
  after.destroy();
});

/** Connections waiting in the kernel's accept queue of the IPv4 socket listening on `port` (/proc/net/tcp's rx_queue). */
function acceptQueueLength(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(`:${hexPort}`) && f[3] === "0A") return parseInt(f[4]!.split(":")[1]!, 16);
  }
  throw new Error(`no socket listens on ${port}`);
}

test.serial("while its JavaScript is busy, a thread accepts about 8 and leaves the rest in the kernel's queue for other workers; it takes them up after", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  let accepted = 0;
  relay.listen(l.fd, false, {
    accepted: (a) => {
      closeFd(a.fd);
      accepted += 1;
    },
    refused: () => t.fail("refused"),
  });
  // spawnSync holds this thread while the child connects 20 times, then a wait: the relay's thread is on its own meanwhile.
  const child = spawnSync(process.execPath, ["-e", `const net = require("net"); let n = 0; for (let i = 0; i < 20; i++) net.connect(${l.port}, "127.0.0.1", () => { if (++n === 20) process.exit(0); });`], { timeout: 10_000 });
  t.is(child.status, 0, String(child.stderr));
  // This thread stays held (no await) until the relay's thread holds too: what it took and what the kernel keeps then add up to 20.
  let stats = relay.stats();
  let left = acceptQueueLength(l.port);
  for (const until = Date.now() + 5000; !(stats.holding === 1 && stats.acceptedWaiting + left === 20) && Date.now() < until; ) {
    stats = relay.stats();
    left = acceptQueueLength(l.port);
  }
  t.is(stats.holding, 1, "the listener is held");
  t.true(stats.acceptedWaiting >= 8 && stats.acceptedWaiting <= 8 + 3, `${stats.acceptedWaiting} taken: 8, plus at most one accept batch past it`);
  t.is(left, 20 - stats.acceptedWaiting, "the rest wait in the kernel's queue");
  t.is(accepted, 0, "nothing delivered while this thread was held");
  await until(() => accepted === 20, 5000, "all 20 accepted in the end");
  t.is(acceptQueueLength(l.port), 0);
});

test.serial("bad arguments throw and leave the fd the caller's; no fd is left behind by 200 dialled connections", async (t) => {
  const relay = relayFor(t);
  const l = listeningFd(t);
  const targetPort = await echoTarget(t, "X");
  const q = acceptQueue(relay, l.fd, false);
  const probe = net.connect(l.port, "127.0.0.1");
  const a = await q.next();
  t.throws(() => relay.dial(a.fd, "localhost", targetPort, { connectTimeoutMs: 1000, idleTimeoutMs: null }, new Watch()), { instanceOf: TypeError });
  t.throws(() => relay.dial(a.fd, "127.0.0.1", 0, { connectTimeoutMs: 1000, idleTimeoutMs: null }, new Watch()), { instanceOf: RangeError });
  t.throws(() => relay.dial(a.fd, "127.0.0.1", targetPort, { connectTimeoutMs: 0, idleTimeoutMs: null }, new Watch()), { instanceOf: RangeError });
  t.throws(() => relay.dial(a.fd, "fe80::1%no-such-if0", targetPort, { connectTimeoutMs: 1000, idleTimeoutMs: null }, new Watch()), { instanceOf: TypeError, message: /known interface/ });
  closeFd(a.fd); // still the caller's: closing it is not an EBADF
  probe.destroy();
  const before = fdTable(process.pid).size;
  const clients = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const c = net.connect(l.port, "127.0.0.1");
      const got = readUntilEnd(c);
      c.end(`#${i}`);
      return { got, i };
    }),
  );
  const watches: Watch[] = [];
  for (let i = 0; i < 200; i++) {
    const w = new Watch();
    watches.push(w);
    relay.dial((await q.next()).fd, "127.0.0.1", targetPort, { connectTimeoutMs: 2000, idleTimeoutMs: null }, w);
  }
  for (const c of clients) t.is(await c.got, `X:#${c.i}`);
  const ends = await Promise.all(watches.map((w) => w.end));
  t.true(ends.every((e) => e.reason === "closed"));
  await until(() => fdTable(process.pid).size <= before, 5000, "fds back to where they were");
});
