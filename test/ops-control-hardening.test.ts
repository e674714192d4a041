// The control socket stays usable whatever reaches it: a runtime dir of any
// length, requests that are not requests, too many clients, slow writers.
// Each bad request is answered USAGE with a reason, counted, and the next
// well-formed one is served.
import test from "ava";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { runCli, startSupervisor, tempDir, type RunningSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { adminGet, rssBytes, within } from "./helpers/core.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";
import { controlRequest, expectStatus } from "../fuzz/targets/control.js";
import { CONTROL_LIMITS, CONTROL_SOCKET, type ControlResponse } from "../common/control-protocol.js";

async function start(t: import("ava").ExecutionContext, runtimeDir?: string): Promise<RunningSupervisor> {
  const target = await startTarget("echo");
  const ports = await freePorts(1);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "ctl", Ports: ports, Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 1, runtimeDir, args: ["--access-log", "off"] });
  t.teardown(async () => {
    await sup.stop("SIGKILL");
    await target.close();
  });
  return sup;
}

async function rejected(sup: RunningSupervisor, reason: string): Promise<number | undefined> {
  const m = await adminGet(sup.adminPort, "/metrics");
  return sampleValue(parseMetrics(m.body), "switchyard_control_rejected_total", { reason });
}

/** Sends `bytes` (then half-closes if `end`), resolves with the answer once the server closes. */
function rawRequest(socketPath: string, bytes: Buffer | string, end = false): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    let answer = "";
    s.setEncoding("utf8");
    s.on("connect", () => (end ? s.end(bytes) : s.write(bytes)));
    s.on("data", (d: string) => (answer += d));
    s.on("error", () => undefined);
    s.on("close", () => resolve({ answer, closed: true }));
  });
}

test("a runtime dir longer than sun_path: the supervisor starts, ctl status and reload work, the socket is the real path's, 0600", async (t) => {
  const base = tempDir();
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const runtimeDir = path.join(base, "r".repeat(Math.max(10, 130 - base.length)));
  t.true(Buffer.byteLength(runtimeDir) > 107, runtimeDir);
  const sup = await start(t, runtimeDir);
  const socketFile = path.join(runtimeDir, CONTROL_SOCKET);
  const st = fs.statSync(socketFile);
  t.true(st.isSocket());
  t.is(st.mode & 0o777, 0o600, `mode ${(st.mode & 0o777).toString(8)}`);
  // A path cut short to 107 bytes would have bound a file next to the runtime dir.
  t.deepEqual(fs.readdirSync(base), [path.basename(runtimeDir)]);

  const status = await runCli(["ctl", "--runtime-dir", runtimeDir, "--json", "status"]);
  t.is(status.code, 0, status.stderr);
  t.is((JSON.parse(status.stdout) as { pid: number }).pid, sup.pid);
  const reload = await runCli(["ctl", "--runtime-dir", runtimeDir, "reload"]);
  t.is(reload.code, 0, reload.stderr);
  t.regex(reload.stdout, /^reloaded: generation 2 serving/);

  // Once the supervisor is gone, ctl names the real file in its message.
  await sup.stop();
  const gone = await runCli(["ctl", "--runtime-dir", runtimeDir, "status"]);
  t.is(gone.code, 1);
  t.true(gone.stderr.includes(`cannot reach ${socketFile}: `), gone.stderr);
  t.regex(gone.stderr, /ECONNREFUSED|ENOENT/);
});

test("requests that are not requests are answered USAGE with the reason, counted; the next request is served", async (t) => {
  const sup = await start(t);
  const socketPath = path.join(sup.runtimeDir, CONTROL_SOCKET);
  const cases: { send: Buffer | string; end?: boolean; message: RegExp }[] = [
    { send: "null\n", message: /must be a JSON object like \{"command":"status"\}, not null/ },
    { send: "[]\n", message: /not an array/ },
    { send: "1\n", message: /not a number/ },
    { send: '"status"\n', message: /not a string/ },
    { send: "{}\n", message: /needs a string "command": reload or status/ },
    { send: '{"command":1}\n', message: /needs a string "command"/ },
    { send: '{"command":"nope"}\n', message: /unknown command "nope"; expected reload or status/ },
    { send: '{"command":"status","x":1}\n', message: /unknown key "x" in request/ },
    { send: '{"__proto__":{"command":"status"}}\n', message: /unknown key "__proto__"/ },
    { send: "not json\n", message: /request is not JSON/ },
    { send: Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]), message: /not valid UTF-8/ },
    { send: `${"x".repeat(CONTROL_LIMITS.maxRequestBytes + 1)}\n`, message: /request longer than 4096 bytes/ },
    // 4 MB without a newline: refused after the first 4 KB, the rest read and dropped, the answer still heard.
    { send: Buffer.alloc(4 * 1024 * 1024, 0x61), message: /request longer than 4096 bytes/ },
    { send: '{"command":"status"}', end: true, message: /request ended without its newline/ },
    { send: "", end: true, message: /connection ended before a request line/ },
  ];
  const rssBefore = rssBytes(sup.pid)!;
  for (const c of cases) {
    const { answer } = await within(rawRequest(socketPath, c.send, c.end), 5000, `an answer to ${String(c.send).slice(0, 40)}`);
    t.true(answer.endsWith("\n") && answer.indexOf("\n") === answer.length - 1, `one line: ${JSON.stringify(answer)}`);
    const r = JSON.parse(answer) as ControlResponse;
    t.false(r.ok);
    if (!r.ok) {
      t.is(r.code, "USAGE", r.message);
      t.regex(r.message, c.message);
    }
  }
  t.is(await rejected(sup, "usage"), cases.length);
  const logged = await sup.waitFor((l) => l.event === "control_rejected", 5000);
  t.is(logged.level, 40);
  t.true(((logged.rejected as Record<string, number>).usage ?? 0) >= 1);
  // Nothing of the 4 MB was kept.
  t.true(rssBytes(sup.pid)! - rssBefore < 16 * 1024 * 1024, `RSS grew ${(rssBytes(sup.pid)! - rssBefore) / 1048576} MB`);
  // Still serving, with no INTERNAL anywhere.
  await expectStatus(socketPath, sup.pid);
  const good = await controlRequest(socketPath, '{"command":"status"}\n', 5000);
  t.true(good?.ok);
});

test("at most 64 control connections; a client that never completes its line is closed after 5 s, however slowly it writes", async (t) => {
  const sup = await start(t);
  const socketPath = path.join(sup.runtimeDir, CONTROL_SOCKET);
  const limit = CONTROL_LIMITS.maxConnections;

  // 63 silent clients and one that writes a byte every 200 ms, never a newline.
  const held: { socket: net.Socket; openedAt: number; answer: string; closed: Promise<number> }[] = [];
  for (let i = 0; i < limit; i++) {
    const socket = net.connect(socketPath);
    socket.setEncoding("utf8");
    socket.on("error", () => undefined);
    const h = { socket, openedAt: 0, answer: "", closed: new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now()))) };
    socket.on("data", (d: string) => (h.answer += d));
    await within(new Promise((r) => socket.once("connect", r)), 5000, "connect");
    h.openedAt = Date.now();
    held.push(h);
  }
  const slow = held[limit - 1]!;
  const drip = setInterval(() => slow.socket.writable && slow.socket.write("{"), 200);
  t.teardown(() => {
    clearInterval(drip);
    for (const h of held) h.socket.destroy();
  });

  // The 65th is refused at once, with a reason; so is ctl.
  const busy = await within(rawRequest(socketPath, '{"command":"status"}\n'), 2000, "a busy answer");
  const r = JSON.parse(busy.answer) as ControlResponse;
  t.deepEqual(r, { ok: false, code: "CONTROL_BUSY", message: `too many control connections (limit ${limit}); try again` });
  const ctl = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "status"]);
  t.is(ctl.code, 1);
  t.regex(ctl.stderr, /failed: CONTROL_BUSY: too many control connections \(limit 64\)/);
  t.is(await rejected(sup, "busy"), 2);

  // Every held client, the slow writer too, is answered and closed at the deadline.
  const closedAt = await within(Promise.all(held.map((h) => h.closed)), 15_000, "the held clients closed");
  for (const [i, h] of held.entries()) {
    const after = closedAt[i]! - h.openedAt;
    t.true(after >= CONTROL_LIMITS.requestDeadlineMs - 50 && after < CONTROL_LIMITS.requestDeadlineMs + 2500, `client ${i} closed after ${after} ms`);
    t.regex(h.answer, /"code":"USAGE","message":"no complete request line within 5000 ms"/);
  }
  t.true(slow.socket.bytesWritten >= 20, `the slow writer wrote ${slow.socket.bytesWritten} bytes`);
  t.is(await rejected(sup, "timeout"), limit);
  await expectStatus(socketPath, sup.pid);
  t.is(sup.child.exitCode, null);
});
