// One stream of bulk bytes on loopback, three ways: direct, through the native
// relay (native/relay.ts), and through a Node pipe (the worker's JS path).
// The source and the sink are processes of their own (Node, writing 4 MiB
// buffers and discarding; or iperf3 -l 1M); the proxy is this process, so its
// CPU time (the relay's thread included) is the proxy's cost.
//
//   node dist/bench/tools/relay-bulk.js [--gib 2] [--runs 3] [--modes direct,relay,js]
//        [--pipe-size BYTES] [--tool node|iperf3]
import net from "node:net";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { Relay } from "../../native/relay.js";
import { dupFd } from "../../native/index.js";
import { socketFd } from "../../common/socket-fd.js";

const HOST = "127.0.0.1";
const CHUNK = 4 << 20;
type Mode = "direct" | "relay" | "js";

interface SinkResult {
  bytes: number;
  /** From the first byte to the FIN. */
  ms: number;
}

/** Discards one connection's bytes; prints its port, then a SinkResult. */
function sink(): void {
  const server = net.createServer((s) => {
    let bytes = 0;
    let start = 0;
    s.on("data", (d: Buffer) => {
      if (bytes === 0) start = performance.now();
      bytes += d.length;
    });
    s.on("end", () => {
      process.stdout.write(`${JSON.stringify({ bytes, ms: performance.now() - start })}\n`);
      s.end();
      server.close();
    });
  });
  server.listen(0, HOST, () => process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`));
}

/** Writes `bytes` in CHUNK-sized writes to the port, then FIN. */
async function source(port: number, bytes: number): Promise<void> {
  const s = net.connect(port, HOST);
  await once(s, "connect");
  const buf = Buffer.alloc(CHUNK, 0x61);
  for (let left = bytes; left > 0; left -= CHUNK) {
    if (!s.write(left >= CHUNK ? buf : buf.subarray(0, left))) await once(s, "drain");
  }
  s.end();
  s.resume();
  await once(s, "close");
}

function child(args: string[]): { lines: AsyncIterator<string>; exited: Promise<unknown> } {
  const p = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ["ignore", "pipe", "inherit"] });
  return { lines: createInterface({ input: p.stdout })[Symbol.asyncIterator](), exited: once(p, "exit") };
}

async function nextLine(lines: AsyncIterator<string>): Promise<string> {
  const r = await lines.next();
  if (r.done) throw new Error("child exited early");
  return r.value;
}

function takeFd(socket: net.Socket): number {
  const fd = dupFd(socketFd(socket)!);
  socket.destroy();
  return fd;
}

/** A proxy in this process to `port`: the relay or a Node pipe. */
async function startProxy(mode: "relay" | "js", port: number, relay: Relay): Promise<net.Server> {
  const server =
    mode === "relay"
      ? net.createServer({ pauseOnConnect: true }, (client) => {
          const up = net.connect(port, HOST);
          up.pause();
          up.once("connect", () => relay.add(takeFd(client), takeFd(up), { idleTimeoutMs: null }, () => {}));
        })
      : net.createServer((client) => {
          const up = net.connect(port, HOST);
          client.on("error", () => up.destroy());
          up.on("error", () => client.destroy());
          client.pipe(up);
          up.pipe(client);
        });
  server.listen(0, HOST);
  await once(server, "listening");
  return server;
}

/** A port free a moment ago, for iperf3's server. */
async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, HOST);
  await once(s, "listening");
  const { port } = s.address() as net.AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** Starts a sink; `transfer` sends `bytes` from a source through `port` and says how fast the sink took them. */
async function startSink(tool: "node" | "iperf3", bytes: number): Promise<{ port: number; transfer(port: number): Promise<number> }> {
  if (tool === "iperf3") {
    const port = await freePort();
    const server = spawn("iperf3", ["-s", "-1", "-p", String(port)], { stdio: "ignore" });
    const exited = once(server, "exit");
    await new Promise((r) => setTimeout(r, 200)); // iperf3 says nothing machine-readable when it listens
    return {
      port,
      transfer: async (via) => {
        const out = await new Promise<string>((resolve, reject) =>
          execFile("iperf3", ["-c", HOST, "-p", String(via), "-n", String(bytes), "-l", "1M", "-J"], { maxBuffer: 1 << 24 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
        );
        await exited;
        const bps = (JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
        return bps / 1e9;
      },
    };
  }
  const sinkProc = child(["--role", "sink"]);
  const port = Number(await nextLine(sinkProc.lines));
  return {
    port,
    transfer: async (via) => {
      const sourceProc = child(["--role", "source", "--port", String(via), "--bytes", String(bytes)]);
      const result = JSON.parse(await nextLine(sinkProc.lines)) as SinkResult;
      await Promise.all([sinkProc.exited, sourceProc.exited]);
      if (result.bytes !== bytes) throw new Error(`the sink got ${result.bytes} bytes of ${bytes}`);
      return (bytes * 8) / (result.ms * 1e6);
    },
  };
}

async function run(mode: Mode, tool: "node" | "iperf3", bytes: number, relay: Relay): Promise<{ gbps: number; cpuPerGiB: number }> {
  const sink = await startSink(tool, bytes);
  const proxy = mode === "direct" ? undefined : await startProxy(mode, sink.port, relay);
  const port = proxy ? (proxy.address() as net.AddressInfo).port : sink.port;
  const cpu = process.cpuUsage();
  const gbps = await sink.transfer(port);
  const used = process.cpuUsage(cpu);
  proxy?.close();
  return { gbps, cpuPerGiB: mode === "direct" ? 0 : (used.user + used.system) / 1e6 / (bytes / 2 ** 30) };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: "string" },
      port: { type: "string" },
      bytes: { type: "string" },
      gib: { type: "string", default: "2" },
      runs: { type: "string", default: "3" },
      modes: { type: "string", default: "direct,relay,js" },
      "pipe-size": { type: "string", default: "0" },
      tool: { type: "string", default: "node" },
    },
  });
  if (values.role === "sink") return sink();
  if (values.role === "source") return source(Number(values.port), Number(values.bytes));

  const bytes = Math.round(Number(values.gib) * 2 ** 30);
  const modes = values.modes.split(",") as Mode[];
  const tool = values.tool === "iperf3" ? "iperf3" : "node";
  const relay = new Relay({ pipeSize: Number(values["pipe-size"]) });
  const runs = new Map<Mode, { gbps: number; cpuPerGiB: number }[]>(modes.map((m) => [m, []]));
  // Taken in turns, so that a machine busy with something else for a while costs every mode alike.
  for (let i = 0; i < Number(values.runs); i++) {
    for (const mode of modes) runs.get(mode)!.push(await run(mode, tool, bytes, relay));
  }
  const results = new Map<Mode, { gbps: number; cpuPerGiB: number }>();
  for (const [mode, rs] of runs) {
    results.set(mode, { gbps: median(rs.map((r) => r.gbps)), cpuPerGiB: median(rs.map((r) => r.cpuPerGiB)) });
    console.log(`${mode.padEnd(6)} ${rs.map((r) => r.gbps.toFixed(2)).join(" ")} Gbit/s`);
  }
  relay.close();
  const direct = results.get("direct")?.gbps;
  const pipe = Number(values["pipe-size"]) > 0 ? `${Number(values["pipe-size"]) / 1024} KiB pipes` : "default pipes";
  console.log(`\n${values.gib} GiB, one stream, ${tool} source and sink, ${pipe}, median of ${values.runs}:`);
  for (const [mode, r] of results) {
    const ratio = direct ? ` ${((r.gbps / direct) * 100).toFixed(0)}% of direct` : "";
    const cpu = mode === "direct" ? "" : `, proxy CPU ${r.cpuPerGiB.toFixed(2)} s/GiB`;
    console.log(`  ${mode.padEnd(6)} ${r.gbps.toFixed(2).padStart(6)} Gbit/s${ratio}${cpu}`);
  }
}

await main();
