// Connections for the native relay's tests, made the way the worker makes them:
// a client connected to a "proxy" listener, the proxy's own connection to a
// target, and the proxy-side fds of both taken out of Node (dup, then destroy
// the net.Socket: the kernel socket lives on through the dup).
import net from "node:net";
import crypto from "node:crypto";
import { once } from "node:events";

import { dupFd } from "../../native/index.js";
import { socketFd } from "../../common/socket-fd.js";
import { Relay, type RelayAddOptions, type RelayEnd, type RelayOptions } from "../../native/relay.js";
import type { ExecutionContext, TestFn } from "ava";
import { until } from "./core.js";
import { fdTable } from "./fd-table.js";

export interface Pair {
  /** The test's client, connected to the proxy. */
  client: net.Socket;
  /** The target's end of the proxy's connection. Paused: nothing is read until the test says so. */
  peer: net.Socket;
  /** The proxy's ends, owned by no net.Socket any more. */
  clientFd: number;
  targetFd: number;
}

/** The proxy-side fd of a socket Node has not read from; the socket itself is destroyed. */
export function takeFd(socket: net.Socket): number {
  const fd = socketFd(socket);
  if (fd === undefined) throw new Error("socket has no fd");
  const dup = dupFd(fd);
  socket.destroy();
  return dup;
}

/** Sockets accepted by a server, handed out by the remote port they came from. */
class Accepted {
  private readonly arrived = new Map<number, net.Socket>();
  private readonly waiting = new Map<number, (s: net.Socket) => void>();

  constructor(server: net.Server) {
    server.on("connection", (s: net.Socket) => {
      s.on("error", () => {}); // resets are what some tests are about
      const port = s.remotePort!;
      const waiter = this.waiting.get(port);
      if (waiter) {
        this.waiting.delete(port);
        waiter(s);
      } else {
        this.arrived.set(port, s);
      }
    });
  }

  take(port: number): Promise<net.Socket> {
    const s = this.arrived.get(port);
    if (s) {
      this.arrived.delete(port);
      return Promise.resolve(s);
    }
    return new Promise((resolve) => this.waiting.set(port, resolve));
  }
}

export class PairMaker {
  private readonly proxy = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  private readonly target = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  private readonly fromClients = new Accepted(this.proxy);
  private readonly fromProxy = new Accepted(this.target);
  /** The test's ends, destroyed by close() if a failed test left them open. */
  private readonly sockets = new Set<net.Socket>();

  private constructor(readonly host: string) {}

  static async start(host = "127.0.0.1"): Promise<PairMaker> {
    const m = new PairMaker(host);
    for (const server of [m.proxy, m.target]) {
      server.listen({ host, port: 0, backlog: 4096 });
      await once(server, "listening");
    }
    return m;
  }

  private port(server: net.Server): number {
    return (server.address() as net.AddressInfo).port;
  }

  async pair(): Promise<Pair> {
    const client = net.connect({ host: this.host, port: this.port(this.proxy), allowHalfOpen: true });
    client.on("error", () => {});
    await once(client, "connect");
    const side = await this.fromClients.take(client.localPort!);
    const upstream = net.connect({ host: this.host, port: this.port(this.target), allowHalfOpen: true });
    upstream.pause(); // Node must not read what the target may send before the relay has it
    await once(upstream, "connect");
    const peer = await this.fromProxy.take(upstream.localPort!);
    for (const s of [client, peer]) {
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
    }
    return { client, peer, clientFd: takeFd(side), targetFd: takeFd(upstream) };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all([this.proxy, this.target].map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** The test file's one PairMaker: started before its first test, closed after its last. */
export function pairMakerFor(test: TestFn): Pick<PairMaker, "pair"> {
  let maker: PairMaker | undefined;
  test.before(async () => {
    maker = await PairMaker.start();
  });
  test.after.always(async () => {
    await maker?.close();
  });
  return { pair: () => maker!.pair() };
}

/** Counts add() and done() over a test file, and fails a done() that runs twice or within add(). */
export class Ledger {
  adds = 0;
  dones = 0;
  readonly problems: string[] = [];

  add(relay: Relay, p: Pick<Pair, "clientFd" | "targetFd">, opts: RelayAddOptions = { idleTimeoutMs: null }): { id: number; end: Promise<RelayEnd> } {
    let resolve!: (e: RelayEnd) => void;
    const end = new Promise<RelayEnd>((r) => (resolve = r));
    let calls = 0;
    let inAdd = true;
    const id = relay.add(p.clientFd, p.targetFd, opts, (e) => {
      if (inAdd) this.problems.push("done() ran within add()");
      if (++calls > 1) this.problems.push(`done() ran ${calls} times for one connection`);
      this.dones++;
      resolve(e);
    });
    inAdd = false;
    this.adds++;
    return { id, end };
  }
}

/** `promise`, or a rejection if the relay ends the connection first (instead of a test waiting for ever). */
export function beforeEnd<T>(promise: Promise<T>, end: Promise<RelayEnd>): Promise<T> {
  const early = end.then((e): never => {
    throw new Error(`the relay ended the connection first: ${JSON.stringify(e)}`);
  });
  return Promise.race([promise, early]);
}

/** `bytes` random bytes each way at once, both ends closing after them: each side gets the other's whole, and the relay counts them exactly. */
export async function bothWaysIntact(t: ExecutionContext, p: Pair, end: Promise<RelayEnd>, bytes: number): Promise<void> {
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

/** Everything a socket receives until its peer's FIN, as a hash and a count. */
export function digestUntilEnd(socket: net.Socket): Promise<{ sha256: string; bytes: number }> {
  const hash = crypto.createHash("sha256");
  let bytes = 0;
  socket.on("data", (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
  });
  socket.resume();
  return new Promise((resolve, reject) => {
    socket.once("end", () => resolve({ sha256: hash.digest("hex"), bytes }));
    socket.once("close", () => reject(new Error("closed before its peer's FIN")));
  });
}

/** Everything a socket receives until its peer's FIN. */
export function readUntilEnd(socket: net.Socket): Promise<string> {
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (d: string) => (text += d));
  socket.resume();
  return new Promise((resolve, reject) => {
    socket.once("end", () => resolve(text));
    socket.once("close", () => reject(new Error(`closed before its peer's FIN (read "${text}")`)));
  });
}

/** Resolves once `socket` has received exactly `want` (more is an error). */
export function readExactly(socket: net.Socket, want: string): Promise<void> {
  let text = "";
  socket.setEncoding("utf8");
  return new Promise((resolve, reject) => {
    const onData = (d: string): void => {
      text += d;
      if (text === want) {
        socket.removeListener("data", onData);
        socket.pause();
        resolve();
      } else if (!want.startsWith(text)) reject(new Error(`read "${text}", wanted "${want}"`));
    };
    socket.on("data", onData);
    socket.resume();
  });
}

export const closed = (socket: net.Socket): Promise<unknown> => (socket.closed ? Promise.resolve() : once(socket, "close"));

/** Resolves when the other end hangs up (a FIN or a reset); reads and drops what comes before. */
export function hungUp(socket: net.Socket): Promise<void> {
  // A paused socket still emits "end" once Node has read the FIN: it may be over already.
  if (socket.readableEnded || socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once("end", () => resolve());
    socket.once("close", () => resolve());
    socket.resume();
  });
}

/** sha256 of the parts, in order, as hex. */
export const sha256 = (...parts: Buffer[]): string => {
  const h = crypto.createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

/** Pipes this process holds (the relay's pool and busy directions). */
export const pipeCount = (): number => [...fdTable(process.pid).values()].filter((l) => l.startsWith("pipe:")).length;

/** A relay closed at the end of the test (its connections must all have ended by then). */
export function relayFor(t: ExecutionContext, opts?: RelayOptions): Relay {
  const relay = new Relay(opts);
  t.timeout(20_000); // a connection the relay mishandles would otherwise hang the file
  t.teardown(() => {
    if (relay.size > 0) relay.shutdownAll();
    else relay.close();
  });
  return relay;
}

/** Until a direction is paused: bytes sit in a pipe because its destination does not read. */
export const untilPaused = (relay: Relay): Promise<void> => until(() => relay.stats().pipesBusy >= 1, 5000, "a direction paused with bytes in its pipe", 10);
