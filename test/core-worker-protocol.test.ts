// A worker that breaks the protocol on its channel (bytes that are not JSON,
// unknown, malformed or out-of-order messages) is logged and replaced, its
// generation rolled back while it starts; the supervisor never goes down and
// the serving generation carries traffic throughout.
import test from "ava";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { makeFaultFile, startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { app, config, reloadVia, sighup, startLoad } from "./helpers/reload.js";
import { Channel, MAX_MESSAGE_BYTES } from "../common/channel.js";
import { socketPair } from "../native/index.js";

const b64 = (text: string): string => Buffer.from(text, "latin1").toString("base64");

const BROKEN: [string, string][] = [
  ["bytes that are not JSON", "\u0000\u00ff garbage\n"],
  ["an empty line", "\n"],
  ["JSON that is no message", "null\n[1,2]\n"],
  ["an unknown type", '{"type":"hello"}\n'],
  ["a malformed started", '{"type":"started","pid":1,"inodes":"1,2"}\n'],
  ["metrics that would break the aggregation", '{"type":"metrics","seq":0,"metrics":[{"name":"x","help":"","type":"counter","aggregator":"sum","values":null}]}\n'],
  ["serving before serve", '{"type":"serving"}\n'],
  ["an answer to a health check never sent", '{"type":"health","seq":999,"serving":true}\n'],
];

test("each way of breaking the protocol while starting: logged, the reload rolled back, 0 failed under load", async (t) => {
  const target = await startTarget("echo");
  const ports = await freePorts(2);
  const faultFile = makeFaultFile("switchyard-protocol-");
  const sup = await startSupervisor({ config: config(app("p", ports, [target])), workers: 2, args: ["--access-log", "off", "--start-timeout", "3"], env: { SWITCHYARD_FAULT_FILE: faultFile } });
  const load = startLoad(ports, 8, 60_000);
  t.teardown(async () => {
    await load.stop();
    await sup.stop();
    await target.close();
  });
  await load.progress(100);
  for (const [what, bytes] of BROKEN) {
    fs.writeFileSync(faultFile, `channel:${b64(bytes)}`);
    const r = await reloadVia(sup, sighup(sup));
    t.is(r.ended.event, "reload_failed", `${what}: ${JSON.stringify(r.ended)}`);
    const error = sup.logs.slice(r.begun).find((l) => l.event === "worker_protocol_error");
    t.truthy(error, `${what}: no worker_protocol_error; the reload ended: ${JSON.stringify(r.ended)}`);
    t.regex(String(r.ended.reason), /broke the protocol/, `${what}: rolled back for another reason`);
    t.is(sup.child.exitCode, null, `${what}: the supervisor exited`);
    await load.progress(50);
  }
  fs.rmSync(faultFile);
  const clean = await reloadVia(sup, sighup(sup));
  t.is(clean.ended.event, "reload_succeeded");
  const result = await load.stop();
  t.log(`exchanges ${JSON.stringify(result)}`);
  t.is(result.failed, 0, JSON.stringify(result.errors));
  t.is(result.wrongBytes, 0);
});

test("a serving worker that writes garbage is killed and replaced", async (t) => {
  const target = await startTarget("echo");
  const ports = await freePorts(1);
  const faultFile = makeFaultFile("switchyard-protocol-");
  const sup = await startSupervisor({ config: config(app("p", ports, [target])), workers: 1, args: ["--access-log", "off"], env: { SWITCHYARD_FAULT_FILE: faultFile } });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  fs.writeFileSync(faultFile, `channel-serving:${b64("not json at all\n")}`);
  const r = await reloadVia(sup, sighup(sup));
  t.is(r.ended.event, "reload_succeeded");
  const error = await sup.waitFor((l) => l.event === "worker_protocol_error", 10_000, r.begun);
  // The replacement must not break the protocol again.
  fs.rmSync(faultFile);
  const died = await sup.waitFor((l) => l.event === "worker_died" && l.pid === error.pid, 10_000, r.begun);
  t.is(died.signal, "SIGKILL");
  const ready = await sup.waitFor((l) => l.event === "worker_ready" && l.pid !== error.pid, 10_000, sup.logs.indexOf(died));
  t.not(ready.pid, error.pid);
  t.is((await sup.admin("/healthz")).status, 200);
});

test("Channel: a message over the size bound is refused and the channel closed, without buffering it all", async (t) => {
  const [a, b] = socketPair();
  const invalid: string[] = [];
  const channel = new Channel(a, { message: () => t.fail("no message expected"), invalid: (reason) => invalid.push(reason), close: () => undefined });
  const peer = new net.Socket({ fd: b, readable: true, writable: true });
  peer.on("error", () => undefined);
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  for (let sent = 0; sent <= MAX_MESSAGE_BYTES && !peer.destroyed && channel.connected; sent += chunk.length) {
    // The refusal resets the peer: "error" then "close", either of which ends the wait.
    if (!peer.write(chunk)) await new Promise((resolve) => ["drain", "close", "error"].forEach((e) => peer.once(e, resolve)));
  }
  t.deepEqual(invalid, [`a message over ${MAX_MESSAGE_BYTES} bytes`]);
  t.false(channel.connected);
  peer.destroy();
});

test("metrics a worker sends under a supervisor metric's name, or another type, cannot break /metrics", async (t) => {
  const target = await startTarget("echo");
  const ports = await freePorts(1);
  const faultFile = makeFaultFile("switchyard-protocol-");
  const sup = await startSupervisor({ config: config(app("p", ports, [target])), workers: 1, args: ["--access-log", "off"], env: { SWITCHYARD_FAULT_FILE: faultFile } });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  const family = (name: string, type: string) => ({ name, help: "x", type, aggregator: "sum", values: [{ value: 7, labels: {} }] });
  // Well-formed and not ahead of any request (seq 0), so taken as the worker's latest
  // counts; then garbage, so the worker is killed and those counts become its final ones.
  const poison = { type: "metrics", seq: 0, metrics: [family("switchyard_reloads_total", "counter"), family("switchyard_connections_total", "gauge"), family("nodejs_heap_size_total_bytes", "gauge")] };
  fs.writeFileSync(faultFile, `channel-serving:${b64(JSON.stringify(poison) + "\nnot json\n")}`);
  const r = await reloadVia(sup, sighup(sup));
  t.is(r.ended.event, "reload_succeeded");
  const error = await sup.waitFor((l) => l.event === "worker_protocol_error", 10_000, r.begun);
  fs.rmSync(faultFile);
  await sup.waitFor((l) => l.event === "worker_ready" && l.pid !== error.pid, 10_000, sup.logs.indexOf(error));
  for (let i = 0; i < 3; i++) {
    const m = await sup.admin("/metrics");
    t.is(m.status, 200, m.body.slice(0, 300));
    t.regex(m.body, /^switchyard_reloads_total\{result="success"\} 1$/m);
  }
});
