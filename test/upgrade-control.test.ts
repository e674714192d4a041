// Upgrades as an operator drives them: SIGUSR2 as well as `ctl upgrade`; the
// MaxConnections table handed over (the old workers' connections still count);
// one upgrade at a time and no reload during one; a successor stopped while its
// predecessor drains waits for it.
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { runCli, startSupervisor } from "./helpers/supervisor.js";
import { carried, freePorts, held, startTarget } from "./helpers/net.js";

const MAX = 3;

const gone = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

/** Stops an upgrade's successor (not this test's child: no exit event) and waits, bounded, for it to go. */
async function stopSuccessor(pid: number, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (pid === 0 || gone(pid)) return;
  process.kill(pid, signal);
  for (const until = Date.now() + 20_000; !gone(pid) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
}

test("MaxConnections holds across an upgrade: the predecessor's open connections count in the successor", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "capped", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`], MaxConnections: MAX }] }, workers: 1, drainTimeout: 60, args: ["--access-log", "off"] });
  const open: net.Socket[] = [];
  let successor = 0;
  t.teardown(async () => {
    for (const s of open) s.destroy();
    await sup.stop();
    await stopSuccessor(successor);
    await target.close();
  });
  for (let i = 0; i < MAX; i++) open.push(await held(port));
  t.false(await carried(port), "the limit holds before the upgrade");

  const r = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "--json", "upgrade"]);
  t.is(r.code, 0, r.stderr);
  successor = (JSON.parse(r.stdout) as { pid: number }).pid;
  // The old supervisor drains (its workers hold the 3); the new one serves, and knows they are open.
  t.false(await carried(port), "the successor admitted a connection over the app's limit");
  open.shift()!.destroy();
  let admitted = false;
  for (const until = Date.now() + 5000; !admitted && Date.now() < until; ) admitted = await carried(port);
  t.true(admitted, "a place given back by a draining connection is not seen by the successor");
  for (const s of open.splice(0)) s.destroy();
  // Once the predecessor has exited, its rows are settled: the full limit is the successor's.
  await sup.exited;
  for (let i = 0; i < MAX; i++) open.push(await held(port));
  t.false(await carried(port));
});

test("one upgrade at a time, and no reload during one: each refused with its reason, the upgrade goes through", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "a", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 1, args: ["--access-log", "off"] });
  let successor = 0;
  t.teardown(async () => {
    await sup.stop();
    await stopSuccessor(successor);
    await target.close();
  });
  const first = runCli(["ctl", "--runtime-dir", sup.runtimeDir, "--json", "upgrade"]);
  await sup.waitFor((l) => l.event === "upgrade_started");
  const [second, reload] = await Promise.all([runCli(["ctl", "--runtime-dir", sup.runtimeDir, "upgrade"]), runCli(["ctl", "--runtime-dir", sup.runtimeDir, "reload"])]);
  t.is(second.code, 1);
  t.regex(second.stderr, /UPGRADE_BUSY: an upgrade is already under way/);
  t.is(reload.code, 1);
  t.regex(reload.stderr, /UPGRADE_IN_PROGRESS/);
  const r = await first;
  t.is(r.code, 0, r.stderr);
  successor = (JSON.parse(r.stdout) as { pid: number }).pid;
  t.true(await carried(port));
});

test("stopped while its predecessor still drains, a successor exits only after it (systemd would SIGKILL what is left)", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "a", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 1, drainTimeout: 60, args: ["--access-log", "off"] });
  let successor = 0;
  const open: net.Socket[] = [];
  t.teardown(async () => {
    for (const s of open) s.destroy();
    await sup.stop();
    await stopSuccessor(successor, "SIGKILL");
    await target.close();
  });
  const long = await held(port);
  open.push(long);
  const r = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "--json", "upgrade"]);
  t.is(r.code, 0, r.stderr);
  successor = (JSON.parse(r.stdout) as { pid: number }).pid;
  const from = sup.logs.length;
  process.kill(successor, "SIGTERM");
  await sup.waitFor((l) => l.event === "waiting_for_predecessor" && l.pid === successor, 10_000, from);
  t.false(gone(successor), "the successor exited while its predecessor still carried a connection");
  long.write("still there");
  const [echo] = (await once(long, "data")) as [Buffer];
  t.is(echo.toString(), "still there");
  long.destroy();
  await sup.exited;
  const exitedAt = Date.now();
  for (const until = Date.now() + 10_000; !gone(successor) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
  t.true(gone(successor), "the successor did not exit after its predecessor");
  t.log(`successor exited ${Date.now() - exitedAt} ms after its predecessor`);
});

test("SIGUSR2 upgrades like ctl upgrade: a new supervisor serves, the old one exits", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "a", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 1, args: ["--access-log", "off"] });
  let successor = 0;
  t.teardown(async () => {
    await sup.stop();
    await stopSuccessor(successor);
    await target.close();
  });
  process.kill(sup.pid, "SIGUSR2");
  const handed = await sup.waitFor((l) => l.event === "upgrade_completed", 30_000);
  successor = handed.pid as number;
  t.not(successor, sup.pid);
  await sup.exited;
  t.true(await carried(port));
  const status = JSON.parse((await sup.admin("/status")).body) as { pid: number };
  t.is(status.pid, successor);
});
