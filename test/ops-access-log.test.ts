// The access log: one JSON line per connection with the fields the README
// documents, bytes each way and the target; SIGUSR1 reopens the file for
// logrotate without tearing a line; `off` writes nothing.
import test, { type ExecutionContext } from "ava";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { once } from "node:events";
import { repoRoot, runCli, startSupervisor, tempDir, type LogLine, type RunningSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { app, config, startLoad } from "./helpers/reload.js";
import { sparesReady, supervised, within } from "./helpers/core.js";
import { childPids, isAlive, listeningInodes, socketInodes } from "./helpers/procfs.js";

/** A target that reads the whole request, then answers 2n+3 bytes for n read: the two directions differ. */
async function doublingTarget(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on("data", (c: Buffer) => (n += c.length));
    s.on("end", () => s.end(Buffer.alloc(2 * n + 3, 0x62)));
    s.on("error", () => s.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

/** Sends `size` bytes, half-closes, reads the answer until closed; returns the client's own port and the bytes read. */
async function request(port: number, size: number): Promise<{ clientPort: number; received: number }> {
  const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  await once(s, "connect");
  const clientPort = s.localPort!;
  let received = 0;
  s.on("data", (c: Buffer) => (received += c.length));
  // A client the proxy closes with its bytes unread gets a reset; `received` tells the caller.
  s.on("error", () => undefined);
  const closed = new Promise((resolve) => s.once("close", resolve));
  s.end(Buffer.alloc(size, 0x61));
  await within(closed, 10_000, `answer on ${port}`);
  return { clientPort, received };
}

/** The field names of the README's access-log table. */
function readmeFields(): string[] {
  const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("| field | meaning |"));
  const rows = section.split("\n").slice(2).filter((l) => l.startsWith("|"));
  const end = section.split("\n").slice(2).findIndex((l) => !l.startsWith("|"));
  return rows.slice(0, end < 0 ? undefined : end).flatMap((row) => [...row.split("|")[1]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!));
}

/** Two workers carrying app `name` on one port to an echo target, the access log in a fresh file. */
async function loggingToFile(t: ExecutionContext, name: string): Promise<{ sup: RunningSupervisor; port: number; file: string }> {
  const target = await startTarget("echo");
  t.teardown(() => target.close());
  const [port] = (await freePorts(1)) as [number];
  const file = path.join(tempDir("switchyard-access-"), "access.log");
  const sup = await startSupervisor({ config: config(app(name, [port], [target])), workers: 2, args: ["--access-log", file] });
  t.teardown(() => sup.stop("SIGKILL"));
  return { sup, port, file };
}

function readLines(file: string): Record<string, unknown>[] {
  const text = fs.readFileSync(file, "utf8");
  if (text !== "" && !text.endsWith("\n")) throw new Error(`${file} ends in a torn line: ${JSON.stringify(text.slice(-80))}`);
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

const isAccessLine = (l: LogLine): boolean => "bytes_in" in l && !("event" in l);

const APP_CONFIG = (port: number, targetPort: number, deadPort: number, refusedPort: number) => ({
  Apps: [
    { Name: "double", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${targetPort}`] },
    { Name: "dead", Ports: [deadPort], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${refusedPort}`], ConnectTimeoutMs: 500 },
  ],
});

test("--access-log FILE: one line per connection, bytes each way, target, the README's fields", async (t) => {
  const target = await doublingTarget();
  t.teardown(() => target.close());
  // Nothing listens on `refused`: the "dead" app has no target that answers.
  const [port, deadPort, refused] = (await freePorts(3)) as [number, number, number];
  const file = path.join(tempDir("switchyard-access-"), "access.log");
  const began = Date.now();
  const sup = await startSupervisor({ config: APP_CONFIG(port, target.port, deadPort, refused), workers: 2, args: ["--access-log", file] });
  t.teardown(() => sup.stop("SIGKILL"));

  const sizes = [1, 10, 100, 1000, 10_000, 200_000];
  const done = await Promise.all(sizes.map(async (size) => ({ size, ...(await request(port, size)) })));
  const dead = await request(deadPort, 5);
  t.is(dead.received, 0);
  // Stopping flushes every worker's lines into the file.
  t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });

  const lines = readLines(file);
  t.is(lines.length, sizes.length + 1, JSON.stringify(lines));
  const fields = readmeFields();
  t.deepEqual(fields, ["time", "app", "client_addr", "client_port", "port", "target", "bytes_in", "bytes_out", "duration_ms", "end"]);
  for (const line of lines) t.deepEqual(Object.keys(line).sort(), [...fields].sort(), "fields emitted = fields in the README");
  for (const d of done) {
    const line = lines.find((l) => l.client_port === d.clientPort);
    if (!line) {
      t.fail(`no line for the connection from port ${d.clientPort}`);
      continue;
    }
    t.is(d.received, 2 * d.size + 3);
    t.like(line, { app: "double", client_addr: "127.0.0.1", port, target: `127.0.0.1:${target.port}`, bytes_in: d.size, bytes_out: 2 * d.size + 3, end: "closed" });
    const ended = Date.parse(String(line.time));
    t.true(ended >= began && ended <= Date.now(), `time ${String(line.time)}`);
    t.true(typeof line.duration_ms === "number" && line.duration_ms >= 0);
  }
  t.like(lines.find((l) => l.client_port === dead.clientPort), { app: "dead", port: deadPort, target: null, bytes_in: 0, bytes_out: 0, end: "no_target" });
  // Access lines go to the file only, not among the log lines on stdout.
  t.false(sup.logs.some(isAccessLine));
});

test("SIGUSR1 reopens the file: after a rename, new connections go to the new file, the renamed one holds whole lines", async (t) => {
  const { sup, port, file } = await loggingToFile(t, "rot");

  const load = startLoad([port], 8, 30_000);
  let marker: number;
  try {
    await load.progress(200);
    // logrotate's way: rename, then signal while traffic flows.
    fs.renameSync(file, `${file}.1`);
    const mark = sup.logs.length;
    process.kill(sup.pid, "SIGUSR1");
    await sup.waitFor((l) => l.event === "access_log_reopened", 5000, mark);
    await load.progress(200);
    marker = (await request(port, 42)).clientPort;
  } finally {
    await load.stop();
  }
  t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });
  t.is(load.result.failed, 0, JSON.stringify(load.result.errors));

  const rotated = readLines(`${file}.1`);
  const fresh = readLines(file);
  // Lines still in a worker's pipe at the reopen land in the new file; that is fine, losing or tearing one is not.
  t.true(rotated.length >= 100, `${rotated.length} lines in the renamed file`);
  t.true(fresh.length >= 100, `${fresh.length} lines in the new file`);
  t.is(rotated.length + fresh.length, load.result.ok + load.result.wrongBytes + 1, "one line per connection, none lost or doubled");
  t.like(fresh.find((l) => l.client_port === marker), { app: "rot", bytes_in: 42, bytes_out: 42, end: "closed" });
  t.false(rotated.some((l) => l.client_port === marker));
  for (const l of [...rotated, ...fresh]) t.is(l.bytes_in, l.bytes_out);
});

test("the line of a connection that finishes during the stop's drain is written", async (t) => {
  const target = await startTarget("echo");
  t.teardown(() => target.close());
  const [port] = (await freePorts(1)) as [number];
  const file = path.join(tempDir("switchyard-access-"), "access.log");
  const sup = await startSupervisor({ config: config(app("late", [port], [target])), workers: 1, drainTimeout: 10, args: ["--access-log", file] });
  t.teardown(() => sup.stop("SIGKILL"));
  const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  t.teardown(() => s.destroy());
  await once(s, "connect");
  const clientPort = s.localPort;
  s.write("first");
  await once(s, "data");
  const mark = sup.logs.length;
  const exit = sup.stop("SIGTERM");
  await sup.waitFor((l) => l.event === "worker_draining", 5000, mark);
  s.end("second");
  t.deepEqual(await exit, { code: 0, signal: null });
  const lines = readLines(file);
  t.is(lines.length, 1);
  t.like(lines[0], { app: "late", client_port: clientPort, bytes_in: 11, bytes_out: 11, end: "closed" });
});

test("stdout by default; --access-log off writes none", async (t) => {
  const target = await startTarget("echo");
  t.teardown(() => target.close());
  const [port] = (await freePorts(1)) as [number];
  for (const mode of ["-", "off"]) {
    const sup = await startSupervisor({ config: config(app("quiet", [port], [target])), workers: 2, args: mode === "-" ? [] : ["--access-log", mode] });
    t.teardown(() => sup.stop("SIGKILL"));
    for (let i = 0; i < 3; i++) t.is((await exchange(port, `hello ${i}`)).toString(), `hello ${i}`);
    t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });
    const lines = sup.logs.filter(isAccessLine);
    t.is(lines.length, mode === "-" ? 3 : 0, `access lines on stdout with --access-log ${mode}`);
    if (lines[0]) t.like(lines[0], { app: "quiet", bytes_in: 7, bytes_out: 7, end: "closed" });
  }
  t.false(fs.existsSync(path.join(process.cwd(), "off")), "off is not taken as a file name");
});

test("USR1 sent to every process (`systemctl kill -s USR1` without --kill-whom=main): workers and loaded spares ignore it, no inspector opens", async (t) => {
  const { sup, port } = await loggingToFile(t, "usr1");
  // Loaded: a spare has its USR1 handler only from then on (before, Node would open its
  // inspector, and a spare in that state is never adopted: spare-workers.ts).
  await sparesReady(sup, 2);
  const { workers, spares, all } = await supervised(sup);
  t.is(workers.length, 2);
  t.deepEqual(childPids(sup.pid).sort((a, b) => a - b), all, "the supervisor's children are its workers and its spares");
  const mark = sup.logs.length;
  for (const pid of [sup.pid, ...all]) process.kill(pid, "SIGUSR1");
  await sup.waitFor((l) => l.event === "access_log_reopened", 5000, mark);
  // Traffic through both workers after the signal: they still serve.
  for (let i = 0; i < 6; i++) t.is((await exchange(port, `after usr1 ${i}`)).toString(), `after usr1 ${i}`);
  const inspector = listeningInodes(9229);
  for (const pid of all) {
    t.true(isAlive(pid), `${workers.includes(pid) ? "worker" : "spare"} ${pid} died of USR1`);
    t.false([...socketInodes(pid)].some((ino) => inspector.has(ino)), `${pid} listens on 9229`);
  }
  t.notRegex(sup.stderr(), /Debugger listening/);
  const after = await supervised(sup);
  t.deepEqual(after.workers, workers, "same workers, none restarted");
  t.deepEqual(after.spares.map((x) => x.pid), spares.map((x) => x.pid), "same spares, none replaced");
  t.deepEqual(childPids(sup.pid).sort((a, b) => a - b), all);
  t.deepEqual(sup.logs.slice(mark).filter((l) => l.event === "spare_exited" || l.event === "worker_died"), []);
});

test("an access log that cannot be opened: run exits 1 naming it; one that cannot be reopened keeps its lines in the old file", async (t) => {
  const target = await startTarget("echo");
  t.teardown(() => target.close());
  const [port] = (await freePorts(1)) as [number];
  const dir = tempDir("switchyard-access-");
  const missing = path.join(dir, "no-such-dir", "access.log");
  const configFile = path.join(dir, "config.json");
  fs.writeFileSync(configFile, JSON.stringify(config(app("al", [port], [target]))));
  const refused = await runCli(["run", "--config", configFile, "--admin", "127.0.0.1:0", "--runtime-dir", path.join(dir, "run"), "--steering", "ports", "--access-log", missing]);
  t.is(refused.code, 1, refused.stdout);
  t.regex(refused.stderr, new RegExp(`cannot open the access log ${missing.replace(/[.]/g, "\\.")}: ENOENT`));

  // Started fine; then its directory is moved away: the reopen fails, lines keep going to the moved file.
  const logDir = path.join(dir, "logs");
  fs.mkdirSync(logDir);
  const sup = await startSupervisor({ config: config(app("al", [port], [target])), workers: 1, args: ["--access-log", path.join(logDir, "access.log")] });
  t.teardown(() => sup.stop("SIGKILL"));
  t.is((await exchange(port, "before")).toString(), "before");
  const moved = path.join(dir, "logs-moved");
  fs.renameSync(logDir, moved);
  const mark = sup.logs.length;
  process.kill(sup.pid, "SIGUSR1");
  const failed = await sup.waitFor((l) => l.event === "access_log_reopen_failed", 5000, mark);
  t.is(failed.code, "ENOENT");
  t.is((await exchange(port, "after")).toString(), "after");
  t.deepEqual(await sup.stop("SIGTERM"), { code: 0, signal: null });
  t.deepEqual(readLines(path.join(moved, "access.log")).map((l) => l.bytes_in), [6, 5]);
});
