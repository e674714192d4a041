// Byte streams through a worker: a half-close is passed on and the reply still
// arrives; a large transfer to a slow reader is held back by backpressure, not
// buffered in the worker.
import test from "ava";
import crypto from "node:crypto";
import net from "node:net";
import { once } from "node:events";
import { startSupervisor } from "./helpers/supervisor.js";
import { freePorts } from "./helpers/net.js";
import { rssBytes, servingWorkers, within } from "./helpers/core.js";

interface CustomTarget {
  port: number;
  close(): Promise<void>;
}

/** A target whose behaviour per connection is `handle`. */
async function customTarget(handle: (s: net.Socket) => void): Promise<CustomTarget> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
    handle(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Block `i` of a deterministic stream: a fixed random MiB with `i` in its first 4 bytes. */
const BLOCK = crypto.randomBytes(1 << 20);
function block(i: number): Buffer {
  const b = Buffer.from(BLOCK);
  b.writeUInt32BE(i, 0);
  return b;
}

test("half-close: the client's FIN reaches the target, whose 1 MB reply still arrives in full", async (t) => {
  const reply = crypto.randomBytes(1 << 20);
  let received = "";
  const target = await customTarget((s) => {
    s.setEncoding("utf8").on("data", (c: string) => (received += c));
    // Replies only once the client has finished sending: the half-close must get through.
    s.on("end", () => s.end(reply));
  });
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "half", Ports: [port!], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 2 });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });

  const client = net.connect({ port: port!, host: "127.0.0.1", allowHalfOpen: true });
  const chunks: Buffer[] = [];
  client.on("data", (c: Buffer) => chunks.push(c));
  await once(client, "connect");
  client.end("request body, then FIN");
  // "end" comes only after the target's FIN; a timeout here means the FIN was lost.
  await within(once(client, "end"), 10_000, "the target's reply and FIN");
  const got = Buffer.concat(chunks);
  t.is(received, "request body, then FIN");
  t.is(got.length, reply.length);
  t.true(got.equals(reply), "reply bytes differ");
  client.destroy();
});

test("200 MB to a slow reader: all bytes arrive intact and worker memory stays bounded", async (t) => {
  const BLOCKS = 200;
  // How much the client had read when the target handed its last byte to the kernel.
  let clientBytesAtTargetFinish = -1;
  const target = await customTarget((s) => {
    let i = 0;
    s.on("finish", () => (clientBytesAtTargetFinish = bytes));
    const pump = (): void => {
      while (i < BLOCKS) {
        if (!s.write(block(i++))) {
          s.once("drain", pump);
          return;
        }
      }
      s.end();
    };
    pump();
  });
  let bytes = 0;
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "bulk", Ports: [port!], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 2 });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });

  const workers = await servingWorkers(sup);
  t.is(workers.length, 2);
  const baseline = new Map(workers.map((w) => [w.pid!, rssBytes(w.pid!)!]));
  const peak = new Map(baseline);
  let samples = 0;
  // Memory is sampled on a timer: it is a measurement, not synchronisation.
  const sampler = setInterval(() => {
    samples++;
    for (const pid of baseline.keys()) peak.set(pid, Math.max(peak.get(pid)!, rssBytes(pid) ?? 0));
  }, 50);
  t.teardown(() => clearInterval(sampler));

  // The client reads at about 20 MB/s: a token bucket pauses the socket whenever
  // it is ahead, so the target, writing at loopback speed, is far ahead of it.
  const RATE = 20 * 1024 * 1024; // bytes per second
  const client = net.connect({ port: port!, host: "127.0.0.1" });
  const hash = crypto.createHash("sha256");
  const began = Date.now();
  client.on("data", (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
    const ahead = bytes - (RATE * (Date.now() - began)) / 1000;
    if (ahead > 0) {
      client.pause();
      setTimeout(() => client.resume(), (ahead / RATE) * 1000);
    }
  });
  await within(once(client, "end"), 40_000, "200 MB transfer");
  clearInterval(sampler);
  client.destroy();

  const expected = crypto.createHash("sha256");
  for (let i = 0; i < BLOCKS; i++) expected.update(block(i));
  t.is(bytes, BLOCKS * BLOCK.length);
  t.is(hash.digest("hex"), expected.digest("hex"), "stream content differs");
  // The target was held back to the client's pace: when it finished writing, all but
  // what fits in socket buffers (a few MB per socket, four sockets) had been read.
  // Without backpressure it finishes in about a second, with ~20 MB read.
  t.true(clientBytesAtTargetFinish >= (BLOCKS - 64) * BLOCK.length, `target finished when the client had read only ${Math.round(clientBytesAtTargetFinish / 1048576)} MB`);
  t.true(samples >= 20, `only ${samples} memory samples`);
  // Without backpressure the worker would buffer most of the 200 MB.
  const LIMIT = 150 * 1024 * 1024;
  for (const [pid, base] of baseline) {
    const growth = peak.get(pid)! - base;
    t.true(growth < LIMIT, `worker ${pid} grew by ${Math.round(growth / 1048576)} MB (baseline ${Math.round(base / 1048576)} MB)`);
  }
  t.log(`peak growth MB: ${[...baseline].map(([pid, b]) => Math.round((peak.get(pid)! - b) / 1048576)).join(", ")}; ${Math.round((Date.now() - began) / 1000)} s`);
});
