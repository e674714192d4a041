// Targets and clients for tests: real sockets on 127.0.0.1.
import net from "node:net";
import { once } from "node:events";
import crypto from "node:crypto";
import fs from "node:fs";

export interface Target {
  port: number;
  name: string;
  connections: number;
  server: net.Server;
  close(): Promise<void>;
}

/**
 * A target that echoes; with `tag`, it first writes "<name>\n" so a client
 * can tell which target served it.
 */
export async function startTarget(name: string, opts: { tag?: boolean } = {}): Promise<Target> {
  const sockets = new Set<net.Socket>();
  const t: Partial<Target> = { name, connections: 0 };
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    t.connections! += 1;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
    if (opts.tag) s.write(`${name}\n`);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.port = (server.address() as net.AddressInfo).port;
  t.server = server;
  t.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return t as Target;
}

/**
 * Where tests pick ports: below the kernel's ephemeral range, so that no
 * outgoing connection (of this test, a parallel one, or a worker's upstream)
 * can take a port between the moment it is picked and the moment it is bound.
 */
function pickRange(): [number, number] | undefined {
  const low = 10_000;
  const ephemeralStart = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  return ephemeralStart - 1 > low + 1000 ? [low, ephemeralStart - 1] : undefined;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    // "::" is dual-stack: free there means free on 0.0.0.0 and :: alike.
    s.listen(port, "::", () => s.close(() => resolve(true)));
  });
}

/** Ports that were free a moment ago, from outside the ephemeral range when there is room. */
export async function freePorts(n: number): Promise<number[]> {
  const range = pickRange();
  if (!range) return kernelPickedPorts(n);
  const ports = new Set<number>();
  // Bounded: where "::" cannot be bound at all (IPv6 disabled), the kernel picks instead.
  for (let tries = 0; ports.size < n && tries < 50 * n; tries++) {
    const p = crypto.randomInt(range[0], range[1] + 1);
    if (!ports.has(p) && (await canBind(p))) ports.add(p);
  }
  return ports.size === n ? [...ports] : kernelPickedPorts(n);
}

async function kernelPickedPorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve) => {
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Connects, sends `payload`, half-closes, reads until EOF. */
export function exchange(port: number, payload: Buffer | string, host = "127.0.0.1", timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ port, host, allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`exchange on port ${port} timed out`));
    }, timeoutMs);
    s.on("connect", () => s.end(payload));
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("end", () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks));
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** The name a tagging target wrote first. */
export async function whoServes(port: number, host = "127.0.0.1"): Promise<string> {
  const reply = await exchange(port, "x", host);
  return reply.toString().split("\n")[0]!;
}

export interface LoadResult {
  ok: number;
  failed: number;
  wrongBytes: number;
  errors: Record<string, number>;
}

/** One finished exchange of clientLoops, for callers that need to know when it ran. */
export interface ExchangeOutcome {
  port: number;
  startedAt: number;
  endedAt: number;
  result: "ok" | "failed" | "wrongBytes";
  error?: string;
}

/**
 * `loops` concurrent clients, each: connect, send a random payload, read the
 * full echo, compare, close; until `until()` says stop. Bounded by `maxMs`.
 * `observe`, if given, sees every exchange as it finishes.
 */
export async function clientLoops(
  ports: number[],
  loops: number,
  until: () => boolean,
  maxMs = 60_000,
  host = "127.0.0.1",
  observe?: (o: ExchangeOutcome) => void,
): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failed: 0, wrongBytes: 0, errors: {} };
  const deadline = Date.now() + maxMs;
  let i = 0;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (!until() && Date.now() < deadline) {
        const port = ports[i++ % ports.length]!;
        const payload = crypto.randomBytes(64 + Math.floor(Math.random() * 4096));
        const startedAt = Date.now();
        try {
          const reply = await exchange(port, payload, host);
          const ok = reply.equals(payload);
          if (ok) result.ok++;
          else result.wrongBytes++;
          observe?.({ port, startedAt, endedAt: Date.now(), result: ok ? "ok" : "wrongBytes" });
        } catch (e) {
          result.failed++;
          const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
          result.errors[code] = (result.errors[code] ?? 0) + 1;
          observe?.({ port, startedAt, endedAt: Date.now(), result: "failed", error: code });
        }
      }
    }),
  );
  return result;
}

/** A connection carried to an echoing target and kept open; rejects if the proxy closes it instead. */
export async function held(port: number): Promise<net.Socket> {
  const s = net.connect(port, "127.0.0.1");
  s.on("error", () => undefined);
  s.write("ping");
  const first = await Promise.race([once(s, "data").then(() => "data"), once(s, "close").then(() => "close")]);
  if (first !== "data") throw new Error("the connection was closed instead of carried");
  return s;
}

/** Whether a new connection is carried (echoed) rather than closed at once. */
export async function carried(port: number): Promise<boolean> {
  const reply = await exchange(port, "probe").catch(() => Buffer.alloc(0));
  return reply.toString() === "probe";
}

/** Connects from `localAddress`, writes `payload`, ends, and reads to the end: [reply, the local port used]. */
export async function dialFrom(localAddress: string, port: number, payload: string): Promise<[string, number]> {
  const s = net.connect({ host: "127.0.0.1", port, localAddress, allowHalfOpen: true });
  s.on("error", () => undefined);
  await once(s, "connect");
  const localPort = s.localPort!;
  s.end(payload);
  let reply = "";
  s.setEncoding("utf8").on("data", (d: string) => (reply += d));
  await once(s, "close");
  return [reply, localPort];
}
