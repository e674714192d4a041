// An access-log destination that stops reading (here a FIFO whose reader
// stalls) costs the supervisor at most a bounded buffer: later lines are
// dropped and counted, traffic and admin carry on, and logging resumes once the
// destination reads again.
import test, { type ExecutionContext } from "ava";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { startSupervisor, tempDir, type RunningSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { until } from "./helpers/core.js";

const MAX_CONNECTIONS = 40_000;

/** A supervisor logging into a FIFO that nobody reads yet, driven until it drops lines. */
async function stalledAccessLog(t: ExecutionContext): Promise<{ sup: RunningSupervisor; port: number; readFd: number; attachReader(): net.Socket }> {
  const fifo = path.join(tempDir("switchyard-fifo-"), "access.fifo");
  execFileSync("mkfifo", [fifo]);
  // A reader that is there (so the supervisor's open succeeds) but reads nothing yet.
  const readFd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "logged", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 2, args: ["--access-log", fifo] });
  let reader: net.Socket | undefined;
  t.teardown(async () => {
    await sup.stop("SIGKILL");
    await target.close();
    if (reader) reader.destroy();
    else fs.closeSync(readFd);
  });

  const began = Date.now();
  let made = 0;
  let failed = 0;
  let dropping = false;
  void sup.waitFor((l) => l.event === "access_log_dropping", 120_000).then(() => (dropping = true), () => undefined);
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (!dropping && made < MAX_CONNECTIONS) {
        made++;
        if (String(await exchange(port, "x").catch(() => "")) !== "x") failed++;
      }
    }),
  );
  t.true(dropping, `no access_log_dropping after ${made} connections`);
  t.is(failed, 0);
  t.log(`dropping began after ${made} connections, ${Date.now() - began} ms`);
  const attachReader = (): net.Socket => (reader = new net.Socket({ fd: readFd, readable: true, writable: false }));
  return { sup, port, readFd, attachReader };
}

test("a stalled destination: lines past the buffer are dropped and counted, serving goes on, logging resumes when it reads", async (t) => {
  const { sup, port, attachReader } = await stalledAccessLog(t);
  const began = Date.now();
  const health = await sup.admin("/healthz");
  t.is(health.status, 200, health.body);
  const droppedSoFar = sampleValue(parseMetrics((await sup.admin("/metrics")).body), "switchyard_access_log_dropped_lines_total") ?? 0;
  t.true(droppedSoFar > 0, `dropped ${droppedSoFar}`);

  // The destination reads again: what was buffered arrives, then new lines do.
  let text = "";
  // SIGUSR1 does not reopen a FIFO (logrotate has nothing to rotate there): that would only add a stuck write.
  const mark = sup.logs.length;
  process.kill(sup.pid, "SIGUSR1");
  t.is((await sup.waitFor((l) => l.event === "access_log_reopen_skipped" || l.event === "access_log_reopened", 5000, mark)).event, "access_log_reopen_skipped");
  const reader = attachReader();
  reader.setEncoding("utf8").on("data", (c: string) => (text += c));
  let resumed: Record<string, unknown> | undefined;
  for (let i = 0; i < 2000 && !resumed; i++) {
    await exchange(port, "y");
    resumed = sup.logs.find((l) => l.event === "access_log_resumed");
  }
  t.truthy(resumed, "logging never resumed");
  t.log(`resumed after ${Date.now() - began} ms, ${text.length} bytes read`);
  t.is(sup.logs.filter((l) => l.event === "access_log_dropping").length, 1, "one warning per streak");
  const dropped = sampleValue(parseMetrics((await sup.admin("/metrics")).body), "switchyard_access_log_dropped_lines_total");
  t.true((resumed?.dropped_lines as number) >= droppedSoFar, `streak ${String(resumed?.dropped_lines)}, seen before ${droppedSoFar}`);
  t.is(resumed?.dropped_lines, dropped, "lines dropped after the resume");
  // Every line that was not dropped arrives whole.
  const marker = net.connect({ port, host: "127.0.0.1" });
  await new Promise((r) => marker.once("connect", r));
  const markerPort = marker.localPort;
  marker.resume().end("z");
  await new Promise((r) => marker.once("close", r));
  await until(() => text.includes(`"client_port":${markerPort},`), 10_000, "the marker connection's line");
  const lines = text.split("\n").filter((l) => l !== "");
  t.true(lines.every((l) => JSON.parse(l) !== null), "a torn line");
});

test("SIGTERM while the destination is stalled: the supervisor still stops, saying what it could not write", async (t) => {
  const { sup } = await stalledAccessLog(t);
  const stopped = await sup.stop("SIGTERM");
  t.deepEqual(stopped, { code: 0, signal: null });
  const unflushed = sup.logs.find((l) => l.event === "access_log_unflushed");
  t.true(typeof unflushed?.pending_bytes === "number" && unflushed.pending_bytes > 0, JSON.stringify(unflushed));
});
