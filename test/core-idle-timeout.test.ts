// IdleTimeoutMs: a connection with no byte either way for that long is closed
// (access log `end: "idle_timeout"`, counted as a connection error); one that
// keeps talking stays open however long it lives.
import test from "ava";
import { startSupervisor, type LogLine } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { hold } from "./helpers/held.js";
import { within } from "./helpers/core.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";

const IDLE_MS = 600;

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
  t.is(String(await silent.roundTrip(Buffer.from("s"))), "s");
  t.is(String(await talking.roundTrip(Buffer.from("t"))), "t");
  const silentSince = Date.now();
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
