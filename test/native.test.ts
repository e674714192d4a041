// The native addon against real sockets on loopback.
import test, { type ExecutionContext } from "ava";
import fs, { readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import net from "node:net";
import { once } from "node:events";
import {
  closeFd,
  getPeerCred,
  listenTcp,
  lockExclusive,
  setKeepAlive,
  pendingBytes,
  isReset,
  CounterTable,
  CLIENT_AT_LIMIT,
  COUNTER_SLOTS,
  COUNTER_ROWS,
  recvFds,
  sendFds,
  setRecvTimeout,
  socketInode,
  socketName,
  socketPair,
} from "../native/index.js";
import { isSyscallError } from "../common/errors.js";
import { until } from "./helpers/core.js";

const openFdCount = (): number => readdirSync("/proc/self/fd").length;

function throwsSyscall(t: ExecutionContext, fn: () => unknown, code: string, syscall: string): void {
  const err = t.throws(fn);
  t.true(isSyscallError(err), `not a SyscallError: ${String(err)}`);
  if (!isSyscallError(err)) return;
  t.is(err.code, code);
  t.is(err.syscall, syscall);
  t.is(typeof err.errno, "number");
}

async function acceptOne(t: ExecutionContext, fd: number, host: string): Promise<void> {
  const { port } = socketName(fd);
  const server = net.createServer();
  server.listen({ fd });
  await once(server, "listening");
  try {
    const accepted = once(server, "connection");
    const client = net.connect({ host, port });
    await once(client, "connect");
    const [conn] = (await accepted) as [net.Socket];
    t.is(conn.localPort, port);
    t.is(conn.remotePort, client.localPort);
    client.destroy();
    conn.destroy();
  } finally {
    server.close(); // closes fd
  }
}

test.serial("listenTcp on port 0 accepts a real connection", async (t) => {
  const fd = listenTcp("127.0.0.1", 0, 16);
  const name = socketName(fd);
  t.deepEqual({ address: name.address, family: name.family }, { address: "127.0.0.1", family: 4 });
  t.true(name.port > 0);
  await acceptOne(t, fd, "127.0.0.1");
});

test.serial("IPv6 ::1 listens and accepts", async (t) => {
  let fd: number;
  try {
    fd = listenTcp("::1", 0, 16);
  } catch (e) {
    if (isSyscallError(e) && (e.code === "EADDRNOTAVAIL" || e.code === "EAFNOSUPPORT")) {
      t.log(`skipped: IPv6 loopback unavailable (${e.code})`);
      t.pass();
      return;
    }
    throw e;
  }
  const name = socketName(fd);
  t.is(name.address, "::1");
  t.is(name.family, 6);
  await acceptOne(t, fd, "::1");
});

test.serial("second listen on the same port fails with EADDRINUSE from bind", (t) => {
  const fd = listenTcp("127.0.0.1", 0, 16);
  try {
    const { port } = socketName(fd);
    const err = t.throws(() => listenTcp("127.0.0.1", port, 16));
    t.is((err as { code?: unknown } | undefined)?.code, "EADDRINUSE");
    t.is((err as { syscall?: unknown } | undefined)?.syscall, "bind");
    t.is(err?.message, `bind 127.0.0.1:${port}: Address already in use`);
    t.is((err as { errno?: unknown } | undefined)?.errno, -98);
  } finally {
    closeFd(fd);
  }
});

test.serial("reusePort lets two sockets share a port", (t) => {
  const a = listenTcp("127.0.0.1", 0, 16, { reusePort: true });
  try {
    const b = listenTcp("127.0.0.1", socketName(a).port, 16, { reusePort: true });
    t.is(socketName(b).port, socketName(a).port);
    t.not(socketInode(a), socketInode(b));
    closeFd(b);
  } finally {
    closeFd(a);
  }
});

test.serial("freebind allows a non-local address (TEST-NET, no traffic)", (t) => {
  throwsSyscall(t, () => listenTcp("192.0.2.1", 0, 16), "EADDRNOTAVAIL", "bind");
  const fd = listenTcp("192.0.2.1", 0, 16, { freebind: true });
  t.is(socketName(fd).address, "192.0.2.1");
  closeFd(fd);
});

test.serial("bad host throws EINVAL from inet_pton", (t) => {
  throwsSyscall(t, () => listenTcp("not-an-ip", 0, 16), "EINVAL", "inet_pton");
  throwsSyscall(t, () => listenTcp("127.0.0.1\0junk", 0, 16), "EINVAL", "inet_pton");
  throwsSyscall(t, () => listenTcp("1".repeat(200), 0, 16), "EINVAL", "inet_pton");
});

test.serial("bad argument types throw TypeError/RangeError", (t) => {
  t.throws(() => listenTcp("127.0.0.1", 70000, 16), { instanceOf: RangeError });
  t.throws(() => listenTcp("127.0.0.1", 1.5, 16), { instanceOf: RangeError });
  t.throws(() => listenTcp(1 as unknown as string, 0, 16), { instanceOf: TypeError });
  t.throws(() => socketName("3" as unknown as number), { instanceOf: TypeError });
  const before = openFdCount();
  t.throws(() => listenTcp("127.0.0.1", 0, 16, { keepAliveIdleS: 0 }), { instanceOf: RangeError, message: /opts\.keepAliveIdleS/ });
  t.throws(() => listenTcp("127.0.0.1", 0, 16, { keepAliveIdleS: 60, keepAliveProbes: 1000 }), { instanceOf: RangeError, message: /opts\.keepAliveProbes/ });
  t.throws(() => listenTcp("127.0.0.1", 0, 16, { noDelay: 1 as unknown as boolean }), { instanceOf: TypeError, message: /opts\.noDelay/ });
  t.throws(() => listenTcp("127.0.0.1", 0, 16, { keepAliveIdleS: 60 }), { instanceOf: TypeError, message: /opts\.keepAliveIntervalS and opts\.keepAliveProbes/ });
  t.is(openFdCount(), before, "options are read before the socket exists");
});

test.serial("three fds go through a socketPair with data intact", (t) => {
  const [a, b] = socketPair();
  const listeners = [0, 1, 2].map(() => listenTcp("127.0.0.1", 0, 16));
  try {
    const payload = Buffer.from("plan:gen=7");
    t.is(sendFds(a, payload, listeners), payload.length);
    const got = recvFds(b, 1024, 8);
    t.true(got.data.equals(payload));
    t.is(got.fds.length, 3);
    t.is(new Set([...got.fds, ...listeners]).size, 6, "received fds are new fd numbers");
    got.fds.forEach((fd, i) => {
      t.is(socketInode(fd), socketInode(listeners[i]!));
      t.is(socketName(fd).port, socketName(listeners[i]!).port);
    });
    got.fds.forEach(closeFd);
  } finally {
    listeners.forEach(closeFd);
    closeFd(a);
    closeFd(b);
  }
});

test.serial("more fds than maxFds throws EMSGSIZE and leaks none", (t) => {
  const [a, b] = socketPair();
  const listeners = [0, 1, 2].map(() => listenTcp("127.0.0.1", 0, 16));
  try {
    sendFds(a, Buffer.from("x"), listeners);
    const before = openFdCount();
    throwsSyscall(t, () => recvFds(b, 16, 1), "EMSGSIZE", "recvmsg");
    t.is(openFdCount(), before);
  } finally {
    listeners.forEach(closeFd);
    closeFd(a);
    closeFd(b);
  }
});

test.serial("sendFds rejects a closed fd (EBADF) and more than 253 fds (EINVAL)", (t) => {
  const [a, b] = socketPair();
  try {
    const dead = listenTcp("127.0.0.1", 0, 16);
    closeFd(dead);
    throwsSyscall(t, () => sendFds(a, Buffer.from("x"), [dead]), "EBADF", "sendmsg");
    throwsSyscall(t, () => sendFds(a, Buffer.from("x"), new Array<number>(254).fill(a)), "EINVAL", "sendmsg");
    throwsSyscall(t, () => sendFds(a, Buffer.alloc(0), [a]), "EINVAL", "sendmsg");
  } finally {
    closeFd(a);
    closeFd(b);
  }
});

test.serial("closeFd on -1 or a closed fd throws EBADF", (t) => {
  throwsSyscall(t, () => closeFd(-1), "EBADF", "close");
  const [a, b] = socketPair();
  closeFd(a);
  closeFd(b);
  throwsSyscall(t, () => closeFd(a), "EBADF", "close");
});

test.serial("getPeerCred on a socketPair end is this process", (t) => {
  const [a, b] = socketPair();
  try {
    t.deepEqual(getPeerCred(b), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
  } finally {
    closeFd(a);
    closeFd(b);
  }
});

test.serial("setRecvTimeout makes an empty recvFds throw EAGAIN after the deadline", (t) => {
  const [a, b] = socketPair();
  try {
    setRecvTimeout(b, 100);
    const start = process.hrtime.bigint();
    throwsSyscall(t, () => recvFds(b, 16, 4), "EAGAIN", "recvmsg");
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    t.true(ms >= 90, `returned after ${ms} ms`);
  } finally {
    closeFd(a);
    closeFd(b);
  }
});

test.serial("recvFds returns empty data at EOF", (t) => {
  const [a, b] = socketPair();
  closeFd(a);
  const got = recvFds(b, 16, 4);
  t.is(got.data.length, 0);
  t.deepEqual(got.fds, []);
  closeFd(b);
});

test.serial("1000 listen/close and send/recv cycles leak no fd, error paths included", (t) => {
  const before = openFdCount();
  const [a, b] = socketPair();
  let ok = 0;
  for (let i = 0; i < 1000; i++) {
    const fd = listenTcp("127.0.0.1", 0, 16);
    const { port } = socketName(fd);
    try {
      listenTcp("127.0.0.1", port, 16);
    } catch (e) {
      if (isSyscallError(e) && e.code === "EADDRINUSE") ok++;
    }
    sendFds(a, Buffer.from([i & 0xff]), [fd, fd]);
    const got = recvFds(b, 16, 2);
    if (got.fds.length === 2 && got.data[0] === (i & 0xff)) ok++;
    got.fds.forEach(closeFd);
    sendFds(a, Buffer.from("y"), [fd, fd]);
    try {
      recvFds(b, 16, 1);
    } catch (e) {
      if (isSyscallError(e) && e.code === "EMSGSIZE") ok++;
    }
    closeFd(fd);
  }
  closeFd(a);
  closeFd(b);
  t.is(ok, 3000);
  t.is(openFdCount(), before);
});

test("lockExclusive: one holder per file; the next gets EAGAIN from flock until the holder closes", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-lock-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "lock");
  // flock locks belong to the open file description: two opens contend even in one process.
  const holder = fs.openSync(file, "w");
  const next = fs.openSync(file, "r");
  t.teardown(() => fs.closeSync(next));
  lockExclusive(holder);
  throwsSyscall(t, () => lockExclusive(next), "EAGAIN", "flock");
  fs.closeSync(holder);
  t.notThrows(() => lockExclusive(next));
  throwsSyscall(t, () => lockExclusive(1_000_000), "EBADF", "flock");
});

test("setKeepAlive and pendingBytes on a connected socket; clear errors on anything else", async (t) => {
  let peer: net.Socket | undefined;
  const server = net.createServer((s) => {
    // Reads nothing: what the client writes piles up on the way.
    peer = s.pause();
    s.on("error", () => undefined);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  client.on("error", () => undefined);
  t.teardown(() => {
    client.destroy();
    server.close();
  });
  await once(client, "connect");
  const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
  t.notThrows(() => setKeepAlive(fd, 60, 10, 6));
  t.is(pendingBytes(fd), 0);
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  for (let i = 0; i < 64 && client.writableLength === 0; i++) client.write(chunk);
  await until(() => pendingBytes(fd) > 0, 5000, "bytes queued for a peer that does not read");
  // A reset (the peer closes with unread data): nothing queued will ever move.
  await until(() => peer !== undefined, 5000, "the server's side");
  peer!.destroy();
  await until(() => pendingBytes(fd) === 0, 5000, "no pending bytes after the reset");
  t.throws(() => setKeepAlive(fd, 0, 10, 6), { instanceOf: RangeError, message: /idleS/ });
  t.throws(() => setKeepAlive(fd, 60, 10, 128), { instanceOf: RangeError, message: /probes/ });
  throwsSyscall(t, () => setKeepAlive(1_000_000, 60, 10, 6), "EBADF", "setsockopt");
  throwsSyscall(t, () => pendingBytes(1_000_000), "EBADF", "getsockopt");
  const file = fs.openSync("/proc/self/status", "r");
  t.teardown(() => fs.closeSync(file));
  throwsSyscall(t, () => setKeepAlive(file, 60, 10, 6), "ENOTSOCK", "setsockopt");
});

test("isReset: false while connected and after the peer's FIN (a half-close), true after its reset", async (t) => {
  const accepted: net.Socket[] = [];
  const server = net.createServer((s) => {
    s.on("error", () => undefined);
    accepted.push(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  t.teardown(() => {
    for (const s of accepted) s.destroy();
    server.close();
  });
  const fdOf = (s: net.Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;
  const open = async (): Promise<net.Socket> => {
    const c = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    c.on("error", () => undefined);
    await once(c, "connect");
    await until(() => accepted.length > 0, 5000, "the server's side");
    return c;
  };
  const finned = await open();
  const finPeer = accepted.shift()!;
  t.false(isReset(fdOf(finned)));
  finPeer.end();
  await once(finned, "end");
  t.false(isReset(fdOf(finned)), "a FIN is a half-close");
  finned.destroy();
  const reset = await open();
  // Nothing read: the worker's situation, a leg paused by backpressure.
  reset.pause();
  accepted.shift()!.resetAndDestroy();
  await until(() => isReset(fdOf(reset)), 5000, "the reset seen without reading");
  t.pass();
  reset.destroy();
});

test("CounterTable: acquire up to the limit across rows, release, settle an exited row, one memfd shared by two mappings", (t) => {
  const fd = CounterTable.create();
  t.teardown(() => closeFd(fd));
  // Two mappings of one memfd, as two processes would have.
  const a = new CounterTable(fd);
  const b = new CounterTable(fd);
  t.true(a.acquire(7, 0, 3));
  t.true(b.acquire(7, 1, 3));
  t.true(b.acquire(7, 1, 3));
  t.false(a.acquire(7, 0, 3), "the fourth over rows 0 and 1 together");
  t.is(a.read(7), 3);
  t.is(a.read(8), 0, "slots are apart");
  a.release(7, 0);
  t.is(b.read(7), 2);
  // Row 1 "exits" holding 2: settling gives them back and clears the row.
  a.settle(1);
  t.is(b.read(7), 0);
  a.settle(1);
  t.is(b.read(7), 0, "settling twice takes nothing more");
  t.throws(() => a.acquire(COUNTER_SLOTS, 0, 1), { instanceOf: RangeError, message: /slot/ });
  t.throws(() => a.acquire(0, COUNTER_ROWS, 1), { instanceOf: RangeError, message: /row/ });
  throwsSyscall(t, () => new CounterTable(1_000_000), "EBADF", "mmap");
});

test("CounterTable per client: a client's count stops at its limit, clients apart, a bucket freed at 0, a row settled", (t) => {
  const fd = CounterTable.create();
  t.teardown(() => closeFd(fd));
  const a = new CounterTable(fd);
  const b = new CounterTable(fd);
  const first = a.acquireClient(12345, 0, 2);
  t.true(first >= 0);
  t.is(b.acquireClient(12345, 1, 2), first, "the same client, another worker: the same bucket");
  t.is(a.acquireClient(12345, 0, 2), CLIENT_AT_LIMIT);
  const other = a.acquireClient(12345 + 65536, 0, 2);
  t.true(other >= 0 && other !== first, "a client with the same home bucket gets the next one");
  a.releaseClient(first, 0);
  t.true(a.acquireClient(12345, 0, 2) >= 0, "room again after a release");
  // Row 1 "exits" holding one of the client's two: settled, the client has room again.
  a.settle(1);
  t.is(a.acquireClient(12345, 0, 2), first);
  t.is(a.acquireClient(12345, 0, 2), CLIENT_AT_LIMIT);
  t.throws(() => a.acquireClient(0, 0, 1), { instanceOf: RangeError, message: /key/ });
  t.throws(() => a.acquireClient(1, 0, 65536), { instanceOf: RangeError, message: /limit/ });
});
