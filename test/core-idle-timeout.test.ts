// IdleTimeoutMs: a connection with no byte either way for that long is closed
// (access log `end: "idle_timeout"`, counted as a connection error); one that
// keeps talking stays open however long it lives.
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { setTimeout as delay } from "node:timers/promises";
import { startSupervisor, type LogLine } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { hold } from "./helpers/held.js";
import { within } from "./helpers/core.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";

const IDLE_MS = 600;
/** Slow reads of 16 KiB every 100 ms: READS of them last about four idle periods. */
const READS = 25;

test("a silent connection is closed after IdleTimeoutMs; a talking one outlives it; the access log and metrics say why", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "idle", Ports: [port], Targets: [`127.0.0.1:${target.port}`], IdleTimeoutMs: IDLE_MS }] }, workers: 1 });
  const silent = await hold(port);
  const talking = await hold(port);
  t.teardown(async () => {
    silent.socket.destroy();
    talking.socket.destroy();
    await sup.stop("SIGKILL");
    await target.close();
  });
  // Both are carried through to the target before the clock starts.
  // Taken before the last byte goes out: the proxy's idle timer starts somewhere during this
  // round trip, and on a loaded machine its echo may reach this process well after.
  const silentSince = Date.now();
  t.is(String(await silent.roundTrip(Buffer.from("s"))), "s");
  t.is(String(await talking.roundTrip(Buffer.from("t"))), "t");
  // Read now: a closed socket no longer knows its port.
  const silentPort = silent.socket.localPort;
  const talkingPort = talking.socket.localPort;

  // Round trips back to back until the silent one has been closed and one more idle period has passed.
  let trips = 0;
  let closedAt: number | undefined;
  void silent.peerClosed.then((c) => (closedAt = c.at));
  const talk = async (): Promise<void> => {
    while (closedAt === undefined || Date.now() < closedAt + IDLE_MS) {
      const payload = Buffer.from(`trip ${trips++}`);
      if (!(await talking.roundTrip(payload)).equals(payload)) throw new Error(`wrong echo on trip ${trips}`);
    }
  };
  await within(talk(), 10_000 + IDLE_MS, "the silent connection's close");
  const idleFor = closedAt! - silentSince;
  t.log(`silent connection closed after ${idleFor} ms; ${trips} round trips on the other meanwhile`);
  t.true(idleFor >= IDLE_MS - 50, `closed after ${idleFor} ms, before its idle timeout`);
  t.is(talking.closedBy, undefined, "the talking connection was closed");

  const isLineOf = (clientPort: number | undefined) => (l: LogLine): boolean => "bytes_in" in l && l.client_port === clientPort;
  const silentLine = await sup.waitFor(isLineOf(silentPort), 5000);
  t.like(silentLine, { app: "idle", end: "idle_timeout", bytes_in: 1, bytes_out: 1 });
  await talking.finish(Buffer.from("bye"));
  t.like(await sup.waitFor(isLineOf(talkingPort), 5000), { app: "idle", end: "closed" });
  const metrics = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(metrics, "switchyard_connection_errors_total", { app: "idle", reason: "idle_timeout" }), 1);
});

/** A target that sends `bytes` at once to whoever connects, or reads one chunk per tick when `slowReader`. */
async function pacedTarget(mode: "flood" | "slowReader", onRead: () => void): Promise<{ port: number; close(): void }> {
  const server = net.createServer((s) => {
    s.on("error", () => undefined);
    if (mode === "flood") {
      s.end(Buffer.alloc(16 * 1024 * 1024, 0x66));
      return;
    }
    s.pause();
    const tick = setInterval(() => {
      if (s.read(16 * 1024) !== null) onRead();
    }, 100);
    s.on("close", () => clearInterval(tick));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

test("a slow peer is not silence: downloads to a slow client and uploads to a slow target outlive several idle timeouts", async (t) => {
  let targetReads = 0;
  const flood = await pacedTarget("flood", () => undefined);
  const slow = await pacedTarget("slowReader", () => targetReads++);
  const [down, up] = (await freePorts(2)) as [number, number];
  const sup = await startSupervisor({
    config: {
      Apps: [
        { Name: "down", Ports: [down], Targets: [`127.0.0.1:${flood.port}`], IdleTimeoutMs: IDLE_MS },
        { Name: "up", Ports: [up], Targets: [`127.0.0.1:${slow.port}`], IdleTimeoutMs: IDLE_MS },
      ],
    },
    workers: 1,
  });
  const reader = net.connect({ port: down, host: "127.0.0.1" });
  const writer = net.connect({ port: up, host: "127.0.0.1" });
  t.teardown(async () => {
    reader.destroy();
    writer.destroy();
    await sup.stop("SIGKILL");
    flood.close();
    slow.close();
  });
  const ended: string[] = [];
  for (const [name, s] of [["download", reader], ["upload", writer]] as const) {
    s.on("error", (e) => ended.push(`${name}: ${e.message}`));
    s.on("end", () => ended.push(`${name}: end`));
  }
  await Promise.all([once(reader, "connect"), once(writer, "connect")]);

  // The client reads 16 KiB every 100 ms, far slower than the target sends.
  reader.pause();
  let clientReads = 0;
  const readSlowly = async (): Promise<void> => {
    while (clientReads < READS && ended.length === 0) {
      await delay(100);
      if (reader.read(16 * 1024) !== null) clientReads++;
    }
  };
  // The client writes as fast as the proxy takes it; the target reads 16 KiB every 100 ms.
  const chunk = Buffer.alloc(256 * 1024, 0x75);
  const writeFast = async (): Promise<void> => {
    while (targetReads < READS && ended.length === 0) {
      if (!writer.write(chunk)) await once(writer, "drain");
    }
  };
  await Promise.all([readSlowly(), writeFast()]);
  t.log(`client reads ${clientReads}, target reads ${targetReads}: about ${Math.round((READS * 100) / IDLE_MS)} idle periods`);
  t.deepEqual(ended, [], "a connection was closed while its peer was still taking bytes");
  t.is(clientReads, READS);
  t.true(targetReads >= READS, `target reads ${targetReads}`);
  t.deepEqual(sup.logs.filter((l) => l.end === "idle_timeout"), []);
});
