// sd_notify as systemd sees it: the test binds a real unix datagram socket,
// points NOTIFY_SOCKET at it and reads READY=1, RELOADING=1 + MONOTONIC_USEC,
// READY=1, STATUS= and STOPPING=1. A socket that cannot be used is logged
// once and changes nothing else.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { closeFd, recvDatagram, unixDgramSocket } from "../native/index.js";
import { makeFaultFile, startSupervisor, tempDir } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { app, config, reloadVia, sighup } from "./helpers/reload.js";
import { within } from "./helpers/core.js";

/** One notification: its "KEY=value" lines, and the /healthz status fetched the moment READY=1 arrived. */
interface Notification {
  fields: Map<string, string>;
  healthzAtReady?: Promise<number>;
}

/** Binds `address` as systemd does ("@name": abstract, exact length) and polls it: Node has no datagram unix sockets. */
function listen(address: string, adminPort: number) {
  const socket = unixDgramSocket(address);
  const received: Notification[] = [];
  let waiters: { n: number; resolve(): void }[] = [];
  const poll = setInterval(() => {
    for (let d = recvDatagram(socket, 65536, 16); d !== null; d = recvDatagram(socket, 65536, 16)) {
      for (const fd of d.fds) closeFd(fd);
      onData(d.data);
    }
  }, 5);
  const onData = (buf: Buffer): void => {
    const fields = new Map(buf.toString("utf8").split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as [string, string]));
    const n: Notification = { fields };
    if (fields.get("READY") === "1") {
      n.healthzAtReady = fetch(`http://127.0.0.1:${adminPort}/healthz`).then((r) => r.status, () => 0);
    }
    received.push(n);
    const due = waiters.filter((w) => received.length >= w.n);
    waiters = waiters.filter((w) => received.length < w.n);
    for (const w of due) w.resolve();
  };
  return {
    received,
    /** Resolves once `n` notifications have arrived in all. */
    count: (n: number, what: string) => within(received.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })), 15_000, `${what} (got ${received.map((r) => JSON.stringify([...r.fields])).join(" ")})`),
    close: () => {
      clearInterval(poll);
      closeFd(socket);
    },
  };
}

const usecNow = (): bigint => process.hrtime.bigint() / 1000n;

test("READY=1 once healthy, RELOADING=1 with MONOTONIC_USEC then READY=1 on SIGHUP, STATUS lines, STOPPING=1 on SIGTERM", async (t) => {
  const [t1, t2] = await Promise.all([startTarget("t1"), startTarget("t2")]);
  t.teardown(() => Promise.all([t1.close(), t2.close()]));
  const [port, adminPort] = (await freePorts(2)) as [number, number];
  const notifySocket = path.join(tempDir("switchyard-notify-"), "notify.sock");
  const notes = listen(notifySocket, adminPort);
  t.teardown(() => notes.close());

  const sup = await startSupervisor({ config: config(app("n", [port], [t1])), workers: 2, env: { NOTIFY_SOCKET: notifySocket }, args: ["--admin", `127.0.0.1:${adminPort}`, "--access-log", "off"] });
  t.teardown(() => sup.stop("SIGKILL"));
  t.is(sup.adminPort, adminPort);

  await notes.count(1, "READY=1 at start");
  const ready = notes.received[0]!;
  t.is(ready.fields.get("READY"), "1");
  t.is(await ready.healthzAtReady, 200, "/healthz when READY=1 arrived");
  t.regex(ready.fields.get("STATUS") ?? "", /^generation 1, 2 workers, 1 apps, steering ports, last reload none$/);

  sup.writeConfig(config(app("n", [port], [t2])));
  const before = usecNow();
  const r = await reloadVia(sup, sighup(sup), (src) => src.split(",").includes("sighup"));
  t.is(r.ended.event, "reload_succeeded");
  await notes.count(3, "RELOADING=1 and READY=1 around the reload");
  const after = usecNow();
  const [reloading, readyAgain] = notes.received.slice(1, 3) as [Notification, Notification];
  t.is(reloading.fields.get("RELOADING"), "1");
  t.false(reloading.fields.has("READY"));
  // The supervisor's CLOCK_MONOTONIC is the test's: the stamp falls between the signal and the answer.
  const stamp = BigInt(reloading.fields.get("MONOTONIC_USEC") ?? "0");
  t.true(stamp >= before && stamp <= after, `MONOTONIC_USEC ${stamp} not in [${before}, ${after}]`);
  t.is(reloading.fields.get("STATUS"), "reloading");
  t.is(readyAgain.fields.get("READY"), "1");
  t.is(await readyAgain.healthzAtReady, 200);
  t.regex(readyAgain.fields.get("STATUS") ?? "", /^generation 2, 2 workers, 1 apps, steering ports, last reload ok \(generation 2\)$/);
  t.is((await exchange(port, "after the reload")).toString(), "after the reload");

  // A rolled-back reload still ends in READY=1, and STATUS says it failed.
  sup.writeConfig({ Apps: [{ Name: "n", Ports: [0], Targets: [`127.0.0.1:${t2.port}`] }] });
  const failed = await reloadVia(sup, sighup(sup), (src) => src.split(",").includes("sighup"));
  t.is(failed.ended.event, "reload_failed");
  await notes.count(5, "RELOADING=1 and READY=1 around the failed reload");
  t.is(notes.received[3]!.fields.get("RELOADING"), "1");
  t.is(notes.received[4]!.fields.get("READY"), "1");
  t.regex(notes.received[4]!.fields.get("STATUS") ?? "", /^generation 2, .*last reload FAILED: /);

  const exit = sup.stop("SIGTERM");
  await notes.count(6, "STOPPING=1");
  const stopping = notes.received[5]!;
  t.is(stopping.fields.get("STOPPING"), "1");
  t.truthy(stopping.fields.get("STATUS"));
  t.deepEqual(await exit, { code: 0, signal: null });
  t.is(notes.received.length, 6, "nothing after STOPPING=1");
  t.false(sup.logs.some((l) => l.event === "sd_notify_unavailable"));
});

test("an abstract NOTIFY_SOCKET (@name) works too", async (t) => {
  const target = await startTarget("a");
  t.teardown(() => target.close());
  const [port, adminPort] = (await freePorts(2)) as [number, number];
  const name = `switchyard-test-notify-${process.pid}-${Date.now()}`;
  const notes = listen(`@${name}`, adminPort);
  t.teardown(() => notes.close());
  const sup = await startSupervisor({ config: config(app("a", [port], [target])), workers: 1, env: { NOTIFY_SOCKET: `@${name}` }, args: ["--admin", `127.0.0.1:${adminPort}`, "--access-log", "off"] });
  t.teardown(() => sup.stop("SIGKILL"));
  await notes.count(1, "READY=1 on the abstract socket");
  t.is(notes.received[0]!.fields.get("READY"), "1");
  t.is(await notes.received[0]!.healthzAtReady, 200);
});

test("NOTIFY_SOCKET longer than sun_path holds (a deep directory): READY=1 arrives", async (t) => {
  const target = await startTarget("long");
  t.teardown(() => target.close());
  const [port, adminPort] = (await freePorts(2)) as [number, number];
  const dir = path.join(tempDir("switchyard-notify-"), "d".repeat(100));
  fs.mkdirSync(dir);
  const notifySocket = path.join(dir, "notify.sock");
  t.true(Buffer.byteLength(notifySocket) > 107);
  // The test binds it the way the supervisor reaches it: through an open fd of the directory.
  const dirFd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const notes = listen(`/proc/self/fd/${dirFd}/notify.sock`, adminPort);
  fs.closeSync(dirFd);
  t.teardown(() => notes.close());
  t.true(fs.statSync(notifySocket).isSocket());
  const sup = await startSupervisor({ config: config(app("l", [port], [target])), workers: 1, env: { NOTIFY_SOCKET: notifySocket }, args: ["--admin", `127.0.0.1:${adminPort}`, "--access-log", "off"] });
  t.teardown(() => sup.stop("SIGKILL"));
  await notes.count(1, "READY=1 on the long path");
  t.is(notes.received[0]!.fields.get("READY"), "1");
  t.false(sup.logs.some((l) => l.event === "sd_notify_unavailable"));
});

test("NOTIFY_SOCKET at a missing path: logged once, the proxy serves and reloads", async (t) => {
  const [t1, t2] = await Promise.all([startTarget("t1"), startTarget("t2")]);
  t.teardown(() => Promise.all([t1.close(), t2.close()]));
  const [port] = (await freePorts(1)) as [number];
  const missing = path.join(tempDir("switchyard-notify-"), "no-such.sock");
  const sup = await startSupervisor({ config: config(app("m", [port], [t1])), workers: 1, env: { NOTIFY_SOCKET: missing }, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop("SIGKILL"));
  const warned = await sup.waitFor((l) => l.event === "sd_notify_unavailable", 10_000);
  t.is(warned.socket, missing);
  t.regex(String(warned.reason), /no such file/i);
  t.is((await exchange(port, "still serving")).toString(), "still serving");

  sup.writeConfig(config(app("m", [port], [t2])));
  const r = await reloadVia(sup, sighup(sup), (src) => src.split(",").includes("sighup"));
  t.is(r.ended.event, "reload_succeeded");
  t.is((await exchange(port, "after the reload")).toString(), "after the reload");
  t.is(t2.connections, 1);
  t.is((await sup.admin("/healthz")).status, 200);
  t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });
  t.is(sup.logs.filter((l) => l.event === "sd_notify_unavailable").length, 1, "warned exactly once over start, reload and stop");
});

test("SIGTERM during a reload: STOPPING=1 is the last word, no READY=1 after it", async (t) => {
  const target = await startTarget("s");
  t.teardown(() => target.close());
  const [port, adminPort] = (await freePorts(2)) as [number, number];
  const dir = tempDir("switchyard-notify-");
  const notes = listen(path.join(dir, "notify.sock"), adminPort);
  t.teardown(() => notes.close());
  const faultFile = makeFaultFile();
  const sup = await startSupervisor({
    config: config(app("s", [port], [target])),
    workers: 1,
    env: { NOTIFY_SOCKET: path.join(dir, "notify.sock"), SWITCHYARD_FAULT_FILE: faultFile },
    args: ["--admin", `127.0.0.1:${adminPort}`, "--access-log", "off", "--start-timeout", "30"],
  });
  t.teardown(() => sup.stop("SIGKILL"));
  await notes.count(1, "READY=1 at start");
  // The next generation never turns healthy, so the reload is still running when TERM comes.
  fs.writeFileSync(faultFile, "unhealthy");
  const mark = sup.logs.length;
  process.kill(sup.pid, "SIGHUP");
  await sup.waitFor((l) => l.event === "generation_starting" && l.generation === 2, 10_000, mark);
  await notes.count(2, "RELOADING=1");
  const exit = sup.stop("SIGTERM");
  const ended = await sup.waitFor((l) => l.event === "reload_failed", 10_000, mark);
  t.regex(String(ended.reason), /shutting down/);
  t.deepEqual(await exit, { code: 0, signal: null }, sup.stderr());
  t.deepEqual(notes.received.map((n) => [...n.fields.keys()][0]), ["READY", "RELOADING", "STOPPING"]);
});
