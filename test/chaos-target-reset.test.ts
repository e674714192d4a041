// Fault: a target that resets its connections mid-stream (echoes the first
// bytes, then RST when more come). Those connections fail cleanly: the client sees a reset or
// an early close, never a hang; each is logged and counted as target_error.
// The other app's connections, under load at the same time, all succeed.
import test from "ava";
import net from "node:net";
import { startSupervisor } from "./helpers/supervisor.js";
import { clientLoops, freePorts, startTarget } from "./helpers/net.js";
import { until } from "./helpers/core.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { report, Tally } from "./helpers/chaos.js";

const RESET_CONNECTIONS = 200;
const FIRST = Buffer.alloc(32, "a");

/**
 * Echoes the first chunk it reads, then resets the connection when more comes.
 * The reset comes once the proxy has read everything the target sent (the
 * client has its echo): with bytes still unread, Linux reports the RST to the
 * reader as a plain EOF, and the test is about a reset.
 */
async function resettingTarget(): Promise<{ port: number; resets: () => number; close(): Promise<void> }> {
  let resets = 0;
  // Half-open allowed: a client FIN must not turn the reset into an orderly close.
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => undefined);
    s.once("data", (c: Buffer) => {
      s.write(c);
      s.once("data", () => {
        resets++;
        s.resetAndDestroy();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    resets: () => resets,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Sends FIRST, waits for its echo, sends more: resolves with how the connection then ended (never "ok"). */
function midStream(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    let got = 0;
    let done = false;
    const finish = (how: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(how);
    };
    const timer = setTimeout(() => finish("hang"), 10_000);
    s.on("connect", () => s.write(FIRST));
    s.on("data", (c: Buffer) => {
      got += c.length;
      if (got === FIRST.length) s.write("more");
      else if (got > FIRST.length) finish("unexpected bytes");
    });
    s.on("end", () => finish(got === FIRST.length ? "EOF" : "EOF before the first echo"));
    s.on("error", (e: NodeJS.ErrnoException) => finish(got === FIRST.length ? (e.code ?? e.message) : `${e.code ?? e.message} before the first echo`));
  });
}

test("a target that resets mid-stream: those connections fail cleanly as target_error, the other app's all succeed", async (t) => {
  const echo = await startTarget("echo");
  const resetting = await resettingTarget();
  const [steadyPort, resetPort] = (await freePorts(2)) as [number, number];
  const sup = await startSupervisor({
    config: {
      Apps: [
        { Name: "steady", Ports: [steadyPort], Targets: [`127.0.0.1:${echo.port}`] },
        { Name: "resets", Ports: [resetPort], Targets: [`127.0.0.1:${resetting.port}`] },
      ],
    },
    workers: 2,
  });
  t.teardown(async () => {
    await sup.stop("SIGKILL");
    await echo.close();
    await resetting.close();
  });

  let resetDone = false;
  const steady = clientLoops([steadyPort], 8, () => resetDone, 30_000);
  const touched = new Tally();
  let dialled = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (dialled++ < RESET_CONNECTIONS) touched.add(await midStream(resetPort));
  }));
  resetDone = true;
  const steadyResult = await steady;

  t.is(touched.attempted, RESET_CONNECTIONS);
  // Each saw its first echo, then a reset or a close: no hang, nothing else.
  t.deepEqual(Object.keys(touched.errors).filter((code) => code !== "ECONNRESET" && code !== "EOF"), [], JSON.stringify(touched.errors));
  t.is(resetting.resets(), RESET_CONNECTIONS);

  const untouched = new Tally().addLoad(steadyResult);
  t.true(untouched.attempted >= 100, `only ${untouched.attempted} steady connections`);
  t.is(untouched.failed, 0, JSON.stringify(untouched.errors));

  // Each reset connection: one access-log line and one count, as target_error.
  const lines = () => sup.logs.filter((l) => l.app === "resets" && "end" in l);
  await until(() => lines().length >= RESET_CONNECTIONS, 10_000, "the access-log lines of the reset connections");
  t.deepEqual([...new Set(lines().map((l) => l.end))], ["target_error"], JSON.stringify(lines().filter((l) => l.end !== "target_error").slice(0, 3)) + JSON.stringify(touched.errors));
  t.is(lines().length, RESET_CONNECTIONS);
  t.is(sup.logs.filter((l) => l.app === "steady" && "end" in l && l.end !== "closed").length, 0);
  const samples = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(samples, "switchyard_connection_errors_total", { app: "resets", reason: "target_error" }), RESET_CONNECTIONS);
  t.is(sampleValue(samples, "switchyard_connection_errors_total", { app: "steady" }), undefined);

  const all = Tally.sum(untouched, touched);
  report(t, {
    fault: "3. target resets mid-stream",
    attempted: all.attempted,
    failed: all.failed,
    whatFailed: all.errors,
    touched: `the ${RESET_CONNECTIONS} to the resetting target (all end target_error)`,
  });
});
