// Fault: a target that accepts and never reads. Clients try to push 200 MB
// through it; backpressure must stop them at what the sockets' buffers hold,
// so the worker's memory stays bounded, while the other app's connections,
// carried by the same worker, all succeed. Once the clients give up, the
// stalled connections are closed on both legs.
import test from "ava";
import net from "node:net";
import { startSupervisor } from "./helpers/supervisor.js";
import { clientLoops, freePorts, startTarget } from "./helpers/net.js";
import { rssBytes, servingWorkers, until } from "./helpers/core.js";
import { report, Tally } from "./helpers/chaos.js";

const MB = 1024 * 1024;
const STALLED_CONNECTIONS = 4;
const PUSH_PER_CONNECTION = 50 * MB;
/** What the worker's RSS may grow by while it holds the stalled connections: far below the 200 MB pushed. */
const RSS_GROWTH_BOUND = 48 * MB;
/** A sender whose socket has not drained for this long is stalled: backpressure reached it. */
const STALL_MS = 1000;

/** A target that accepts and never reads. */
async function sinkTarget(): Promise<{ port: number; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    s.pause();
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/**
 * Writes up to `total` bytes, honouring backpressure, until done or stalled.
 * Resolves with the bytes the kernel took and the socket, still open.
 */
function push(port: number, total: number): Promise<{ taken: number; socket: net.Socket; error?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const chunk = Buffer.alloc(64 * 1024, "z");
    let written = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = (error?: string): void => {
      clearTimeout(timer);
      resolve({ taken: socket.bytesWritten - socket.writableLength, socket, ...(error !== undefined ? { error } : {}) });
    };
    const more = (): void => {
      clearTimeout(timer);
      while (written < total) {
        written += chunk.length;
        if (!socket.write(chunk)) {
          timer = setTimeout(() => done(), STALL_MS);
          return;
        }
      }
      done();
    };
    socket.on("connect", more);
    socket.on("drain", more);
    socket.on("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

test.serial("a target that never reads: backpressure bounds the worker's memory, the other app's connections all succeed", async (t) => {
  const echo = await startTarget("echo");
  const sink = await sinkTarget();
  const [steadyPort, sinkPort] = (await freePorts(2)) as [number, number];
  const sup = await startSupervisor({
    config: {
      Apps: [
        { Name: "steady", Ports: [steadyPort], Targets: [`127.0.0.1:${echo.port}`] },
        { Name: "sink", Ports: [sinkPort], Targets: [`127.0.0.1:${sink.port}`] },
      ],
    },
    // One worker carries both apps: the stalled connections share it with the steady load.
    workers: 1,
    args: ["--access-log", "off"],
  });
  const clients: net.Socket[] = [];
  t.teardown(async () => {
    for (const c of clients) c.destroy();
    await sup.stop("SIGKILL");
    await echo.close();
    await sink.close();
  });
  const [worker] = await servingWorkers(sup);
  const pid = worker!.pid!;

  let pushing = true;
  const steady = clientLoops([steadyPort], 4, () => !pushing, 60_000);
  // Warm: the baseline is a worker already carrying the steady load.
  await until(() => echo.connections >= 200, 10_000, "the steady load");
  const baseline = rssBytes(pid)!;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid) ?? 0)), 20);
  const pushed = await Promise.all(Array.from({ length: STALLED_CONNECTIONS }, () => push(sinkPort, PUSH_PER_CONNECTION)));
  clearInterval(sampler);
  peak = Math.max(peak, rssBytes(pid) ?? 0);
  clients.push(...pushed.map((p) => p.socket));
  pushing = false;
  const steadyResult = await steady;

  const taken = pushed.map((p) => p.taken);
  t.log(`taken per connection (MB): ${taken.map((b) => (b / MB).toFixed(1)).join(", ")}; worker RSS ${(baseline / MB).toFixed(0)} MB → peak ${(peak / MB).toFixed(0)} MB`);
  t.deepEqual(pushed.map((p) => p.error), Array(STALLED_CONNECTIONS).fill(undefined));
  t.true(taken.every((b) => b < PUSH_PER_CONNECTION / 2), "a sender was not held back");
  t.true(peak - baseline < RSS_GROWTH_BOUND, `worker RSS grew by ${((peak - baseline) / MB).toFixed(0)} MB`);
  t.is(sink.sockets.size, STALLED_CONNECTIONS);
  const untouched = new Tally().addLoad(steadyResult);
  t.true(untouched.attempted >= 200, `only ${untouched.attempted} steady connections`);
  t.is(untouched.failed, 0, JSON.stringify(untouched.errors));

  report(t, {
    fault: "2. target never reads (200 MB pushed)",
    attempted: untouched.attempted + STALLED_CONNECTIONS,
    failed: untouched.failed,
    whatFailed: untouched.errors,
    touched: `the ${STALLED_CONNECTIONS} to the stalled target: held back after ${taken.map((b) => (b / MB).toFixed(1)).join("/")} MB each, worker RSS +${((peak - baseline) / MB).toFixed(0)} MB`,
  });
});
