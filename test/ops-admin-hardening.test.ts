// The admin port answers /healthz promptly with bounded memory whatever else
// reaches it: idle connections, slowloris clients, header floods, bodies,
// malformed requests, more connections than it takes. Each abuse is closed
// by a limit an operator can read (supervisor/operations/admin.ts ADMIN_LIMITS) and counted.
import test from "ava";
import net from "node:net";
import http from "node:http";
import { startSupervisor, type RunningSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { adminGet, rssBytes, within } from "./helpers/core.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { healthz } from "../fuzz/targets/admin.js";

const HEADERS_TIMEOUT_MS = 5000;
const CHECK_INTERVAL_MS = 1000;
const MAX_CONNECTIONS = 1024;

async function start(t: import("ava").ExecutionContext): Promise<RunningSupervisor> {
  const target = await startTarget("echo");
  const ports = await freePorts(1);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "adm", Ports: ports, Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 1, args: ["--access-log", "off"] });
  t.teardown(async () => {
    await sup.stop("SIGKILL");
    await target.close();
  });
  return sup;
}

async function rejected(sup: RunningSupervisor, reason: string): Promise<number | undefined> {
  const m = await adminGet(sup.adminPort, "/metrics");
  return sampleValue(parseMetrics(m.body), "switchyard_admin_rejected_total", { reason });
}

interface Client {
  socket: net.Socket;
  connectedAt: number;
  answer: string;
  closedAt: Promise<number>;
}

async function connect(port: number): Promise<Client> {
  const socket = net.connect(port, "127.0.0.1");
  socket.setEncoding("latin1");
  socket.on("error", () => undefined);
  const c: Client = { socket, connectedAt: 0, answer: "", closedAt: new Promise((resolve) => socket.once("close", () => resolve(Date.now()))) };
  socket.on("data", (d: string) => (c.answer += d));
  await within(new Promise((r) => socket.once("connect", r)), 5000, "connect to the admin port");
  c.connectedAt = Date.now();
  return c;
}

/** One request on its own connection; resolves with the status line and how many request bytes went out before the server closed. */
function oneShot(port: number, head: string, body?: { chunk: Buffer; forever: boolean }): Promise<{ statusLine: string; sent: number; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const s = net.connect(port, "127.0.0.1");
    let answer = "";
    let sent = 0;
    s.setEncoding("latin1");
    s.on("data", (d: string) => (answer += d));
    s.on("error", () => undefined);
    const pump = () => {
      // Writes as fast as the socket drains, until the server closes it.
      while (body && !s.destroyed && s.writable) {
        sent += body.chunk.length;
        if (!s.write(body.chunk)) return void s.once("drain", pump);
        if (!body.forever) return;
      }
    };
    s.on("connect", () => {
      s.write(head);
      pump();
    });
    s.on("close", () => resolve({ statusLine: answer.split("\r\n")[0] ?? "", sent, ms: Date.now() - started }));
  });
}

/** Writes a request and its whole body, resolves with what came back within 2 s (the connection left open). */
function sendAndRead(port: number, head: string, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let answer = "";
    s.setEncoding("latin1");
    s.on("error", () => undefined);
    s.on("connect", () => s.write(Buffer.concat([Buffer.from(head), body])));
    s.on("data", (d: string) => {
      answer += d;
      if (answer.includes("\r\n\r\n") && answer.endsWith("\n")) {
        s.destroy();
        resolve(answer);
      }
    });
    s.on("close", () => resolve(answer));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

test.serial("500 idle connections, 50 slowloris clients and a header flood: /healthz answers within 100 ms, memory bounded, each abuser closed by its timeout", async (t) => {
  const sup = await start(t);
  const port = sup.adminPort;
  const rssBefore = rssBytes(sup.pid)!;
  const quiet: number[] = [];
  for (let i = 0; i < 10; i++) quiet.push((await healthz(port, 2000)).ms);

  const idle: Client[] = [];
  for (let i = 0; i < 500; i++) idle.push(await connect(port));
  const slow: Client[] = [];
  for (let i = 0; i < 50; i++) {
    const c = await connect(port);
    c.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    slow.push(c);
  }
  // Slowloris: one more header line every 500 ms each, never the blank line.
  const drip = setInterval(() => {
    for (const c of slow) if (c.socket.writable) c.socket.write(`X-Drip-${Date.now()}: y\r\n`);
  }, 500);
  t.teardown(() => {
    clearInterval(drip);
    for (const c of [...idle, ...slow]) c.socket.destroy();
  });

  // The flood: 8 clients in a loop, each request with 16 KB of headers.
  let flooding = true;
  let floods = 0;
  const floodHead = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ${"f".repeat(16 * 1024)}\r\n\r\n`;
  const floodStatuses = new Set<string>();
  const flood = Promise.all(
    Array.from({ length: 8 }, async () => {
      while (flooding) {
        const r = await oneShot(port, floodHead);
        floods += 1;
        floodStatuses.add(r.statusLine);
      }
    }),
  );

  const loaded: number[] = [];
  let rssPeak = 0;
  for (let i = 0; i < 20; i++) {
    const r = await healthz(port, 2000);
    t.is(r.status, 200);
    loaded.push(r.ms);
    rssPeak = Math.max(rssPeak, rssBytes(sup.pid)!);
  }
  flooding = false;
  await flood;
  t.log(`/healthz ms quiet: median ${median(quiet).toFixed(1)} max ${Math.max(...quiet).toFixed(1)}; under 500 idle + 50 slowloris + flood (${floods} requests of 16 KB headers): median ${median(loaded).toFixed(1)} max ${Math.max(...loaded).toFixed(1)}`);
  t.log(`supervisor RSS: before ${(rssBefore / 1048576).toFixed(1)} MB, peak under abuse ${(rssPeak / 1048576).toFixed(1)} MB`);
  t.true(median(loaded) < 100, `median /healthz ${median(loaded)} ms`);
  t.true(Math.max(...loaded) < 1000, `slowest /healthz ${Math.max(...loaded)} ms`);
  t.true(rssPeak - rssBefore < 64 * 1024 * 1024, `RSS grew ${(rssPeak - rssBefore) / 1048576} MB`);
  t.true(rssPeak < 200 * 1024 * 1024);
  t.deepEqual([...floodStatuses], ["HTTP/1.1 431 Request Header Fields Too Large"]);
  t.is(await rejected(sup, "header_too_large"), floods);

  // Idle and slowloris clients are answered 408 and closed by the headers timeout (checked once a second).
  const idleClosed = await within(Promise.all(idle.map((c) => c.closedAt)), 15_000, "idle connections closed");
  const slowClosed = await within(Promise.all(slow.map((c) => c.closedAt)), 15_000, "slowloris connections closed");
  const bound = HEADERS_TIMEOUT_MS + CHECK_INTERVAL_MS + 1500;
  for (const [i, at] of idleClosed.entries()) t.true(at - idle[i]!.connectedAt >= HEADERS_TIMEOUT_MS - 100 && at - idle[i]!.connectedAt < bound, `idle ${i} closed after ${at - idle[i]!.connectedAt} ms`);
  for (const [i, at] of slowClosed.entries()) {
    t.true(at - slow[i]!.connectedAt >= HEADERS_TIMEOUT_MS - 100 && at - slow[i]!.connectedAt < bound, `slowloris ${i} closed after ${at - slow[i]!.connectedAt} ms`);
    t.true(slow[i]!.answer.startsWith("HTTP/1.1 408 Request Timeout"), slow[i]!.answer);
  }
  t.log(`slowest close: idle ${Math.max(...idleClosed.map((at, i) => at - idle[i]!.connectedAt))} ms, slowloris ${Math.max(...slowClosed.map((at, i) => at - slow[i]!.connectedAt))} ms`);
  t.is(await rejected(sup, "timeout"), 550);
  const logged = await sup.waitFor((l) => l.event === "admin_rejected", 5000);
  t.is(typeof (logged.limits as { headersTimeoutMs?: number }).headersTimeoutMs, "number");
  t.is((await healthz(port, 2000)).status, 200);
});

test.serial("bodies are never kept: POST and GET with a body are answered, the rest dropped, an endless one cut soon after the answer", async (t) => {
  const sup = await start(t);
  const port = sup.adminPort;
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  const rssBefore = rssBytes(sup.pid)!;
  // A body that ends: answered, dropped, and the connection kept for the next request.
  const smallAnswered = await sendAndRead(port, `POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: ${chunk.length}\r\n\r\n`, chunk);
  t.true(smallAnswered.startsWith("HTTP/1.1 405 Method Not Allowed"), smallAnswered.slice(0, 100));
  t.regex(smallAnswered, /\r\nConnection: keep-alive\r\n/i);
  // A 1 GB POST and an endless chunked GET: the connection is cut soon after the answer, having dropped at most ~1 MB more.
  const post = await within(oneShot(port, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n", { chunk, forever: true }), 5000, "the POST cut");
  const chunked = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]);
  const get = await within(oneShot(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", { chunk: chunked, forever: true }), 5000, "the GET cut");
  t.log(`bytes written before the server cut the connection: POST ${post.sent} in ${post.ms} ms (answer ${JSON.stringify(post.statusLine)}), chunked GET ${get.sent} in ${get.ms} ms (answer ${JSON.stringify(get.statusLine)})`);
  for (const r of [post, get]) {
    t.true(r.ms < 1500, `cut after ${r.ms} ms`);
    // What the client got rid of: ~1 MB read by the server plus the kernel's socket buffers on both sides.
    t.true(r.sent < 32 * 1024 * 1024, `sent ${r.sent}`);
  }
  t.true(rssBytes(sup.pid)! - rssBefore < 32 * 1024 * 1024, `RSS grew ${(rssBytes(sup.pid)! - rssBefore) / 1048576} MB`);

  // Keep-alive without a body still works: two requests, one connection.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const sockets = new Set<net.Socket>();
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: "127.0.0.1", port, path: "/healthz", agent }, (res) => {
        sockets.add(res.socket);
        t.is(res.statusCode, 200);
        t.is(res.headers.connection, "keep-alive");
        res.resume().on("end", resolve);
      });
      req.on("error", reject);
    });
  }
  t.is(sockets.size, 1);
});

test.serial("malformed requests and oversized headers: 400 and 431, counted; more than 1024 connections: the rest closed at once, counted", async (t) => {
  const sup = await start(t);
  const port = sup.adminPort;
  const cases: [string, string][] = [
    ["GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + "h".repeat(9000) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"],
    ["GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fits: " + "h".repeat(7000) + "\r\n\r\n", "HTTP/1.1 200 OK"],
    ["GET\x01 / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"],
    ["GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"],
    ["\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "HTTP/1.1 400 Bad Request"],
    ["GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "HTTP/1.1 400 Bad Request"],
  ];
  for (const [head, expected] of cases) {
    const r = await within(oneShot(port, head.includes("X-Fits") ? head.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n") : head), 5000, JSON.stringify(head.slice(0, 30)));
    t.is(r.statusLine, expected, JSON.stringify(head.slice(0, 40)));
  }
  t.is(await rejected(sup, "header_too_large"), 1);
  // The request without a Host is Node's own 400 from a parsed request, not a parse error.
  t.is(await rejected(sup, "malformed"), 3);

  const held: Client[] = [];
  t.teardown(() => {
    for (const c of held) c.socket.destroy();
  });
  for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await connect(port));
  // The next one is accepted by the kernel and closed by the server, unanswered.
  const extra = await connect(port);
  const closedAfter = (await within(extra.closedAt, 2000, "the extra connection closed")) - extra.connectedAt;
  t.is(extra.answer, "");
  t.true(closedAfter < HEADERS_TIMEOUT_MS - 1000, `closed after ${closedAfter} ms`);
  for (const c of held) c.socket.destroy();
  // Freed slots are seen once the server has read the closes: retried on each refusal, bounded.
  let answered = 0;
  let refusedAgain = 0;
  const until = Date.now() + 3000;
  while (answered === 0 && Date.now() < until) {
    answered = (await healthz(port, 1000).catch(() => ({ status: 0 }))).status;
    if (answered === 0) refusedAgain += 1;
  }
  t.is(answered, 200);
  t.is(await rejected(sup, "busy"), 1 + refusedAgain);
});
