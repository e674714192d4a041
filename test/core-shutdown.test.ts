// Stopping: SIGTERM (and SIGINT, the same) drains; an exchange in progress when
// the signal arrives completes; the supervisor exits 0 and leaves no child behind.
import test, { type ExecutionContext } from "ava";
import net from "node:net";
import { once } from "node:events";
import { runCli, startSupervisor, type RunningSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { adminGet, supervised, until, within } from "./helpers/core.js";
import { childPids, isAlive } from "./helpers/procfs.js";

/** A supervisor carrying one port to an echo target; both stopped at teardown. */
async function echoSupervisor(t: ExecutionContext, workers: number, drainTimeout: number): Promise<{ sup: RunningSupervisor; port: number }> {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "stop", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] }, workers, drainTimeout });
  t.teardown(async () => {
    await sup.stop("SIGKILL");
    await target.close();
  });
  return { sup, port };
}

async function drainsAndExits(t: ExecutionContext, signal: "SIGTERM" | "SIGINT"): Promise<void> {
  const { sup, port } = await echoSupervisor(t, 2, 10);
  // The supervisor's children: its two workers and its spares (--spare-workers, default --workers), nothing else.
  const { workers, spares, all: children } = await supervised(sup);
  t.is(workers.length, 2);
  t.is(spares.length, 2);
  t.deepEqual(childPids(sup.pid).sort((a, b) => a - b), children, "the supervisor's children are not its workers and spares");

  const client = net.connect({ port: port!, host: "127.0.0.1", allowHalfOpen: true });
  t.teardown(() => client.destroy());
  let echoed = "";
  client.setEncoding("utf8").on("data", (c: string) => (echoed += c));
  const ended = once(client, "end");
  await once(client, "connect");
  client.write("first half, ");
  // The first half came back: the connection is established through a worker.
  const firstHalf = async (): Promise<void> => {
    while (echoed.length < "first half, ".length) await once(client, "data");
  };
  await within(firstHalf(), 5000, "echo of the first half");
  t.is(echoed, "first half, ");

  const mark = sup.logs.length;
  sup.child.kill(signal);
  await sup.waitFor((l) => l.event === "signal" && l.signal === signal, 5000, mark);
  // Both workers have stopped accepting; exactly one of them still carries our connection.
  for (const w of [0, 1]) await sup.waitFor((l) => l.event === "worker_draining" && l.worker === w, 5000, mark);
  const draining = sup.logs.slice(mark).filter((l) => l.event === "worker_draining");
  t.is(draining.reduce((n, l) => n + (l.connections as number), 0), 1);
  t.true(isAlive(sup.pid), "supervisor exited before the connection finished");
  // The spares hold no client: killed at once, not drained; only workers are left (the idle one may have exited already).
  await until(() => spares.every((x) => !isAlive(x.pid)), 5000, "the spares killed at the stop");
  const left = childPids(sup.pid);
  t.deepEqual(left.filter((pid) => !workers.includes(pid)), [], "while draining, a child that is not a worker");
  t.true(left.length >= 1, "the worker carrying the connection is gone");
  // While the workers drain, the admin and control sockets still answer.
  const health = await adminGet(sup.adminPort, "/healthz");
  t.is(health.status, 503, health.body);
  t.is((JSON.parse(health.body) as { status: string }).status, "stopping");
  const ctl = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "--json", "status"]);
  t.is(ctl.code, 0, ctl.stderr);
  const st = JSON.parse(ctl.stdout) as { generations: { state: string; workers: { connections: number | null }[] }[]; spares: unknown[] };
  t.is(st.generations.flatMap((g) => g.workers).reduce((n, w) => n + (w.connections ?? 0), 0), 1, ctl.stdout);
  t.deepEqual(st.generations.map((g) => g.state), ["draining"]);
  t.deepEqual(st.spares, [], "spares listed while stopping");

  client.end("second half");
  await within(ended, 5000, "end of the echo");
  t.is(echoed, "first half, second half");

  const exit = await within(sup.exited, 10_000, "supervisor exit");
  t.deepEqual(exit, { code: 0, signal: null });
  t.true(sup.logs.some((l) => l.event === "supervisor_exited"));
  // Both drained without hitting the deadline.
  t.deepEqual(sup.logs.filter((l) => l.event === "worker_drained").map((l) => l.outcome), ["idle", "idle"]);
  // No child left, spares included.
  for (const pid of children) t.false(isAlive(pid), `child ${pid} outlived the supervisor`);
}

test("SIGTERM: the open exchange completes, exit 0, no child left", drainsAndExits, "SIGTERM");
test("SIGINT behaves like SIGTERM", drainsAndExits, "SIGINT");

test("--drain-timeout 0: SIGTERM closes the open connection at once and exits 0", async (t) => {
  const { sup, port } = await echoSupervisor(t, 1, 0);
  const client = net.connect({ port: port!, host: "127.0.0.1" });
  t.teardown(() => client.destroy());
  await once(client, "connect");
  client.write("x");
  await within(once(client, "data"), 5000, "echo");
  const closed = once(client, "close");
  sup.child.kill("SIGTERM");
  await within(closed, 5000, "the connection closed by the stop");
  t.deepEqual(await within(sup.exited, 5000, "supervisor exit"), { code: 0, signal: null });
  t.deepEqual(sup.logs.filter((l) => l.event === "worker_drained").map((l) => l.outcome), ["timeout"]);
});
