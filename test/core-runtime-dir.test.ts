// One runtime dir, one supervisor: a second `run` on the same dir is refused
// before it touches the first one's control socket; the claim ends
// with the supervisor, however it ends.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { cli, runCommand, RUNTIME_DIR_FILES, startSupervisor, writeJson, type RunningSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";

test("a second supervisor on the same runtime dir is refused; the first keeps its control socket and reloads", async (t) => {
  const target = await startTarget("echo");
  const [port, otherPort] = (await freePorts(2)) as [number, number];
  const first = await startSupervisor({ config: { Apps: [{ Name: "a", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 1 });
  t.teardown(async () => {
    await first.stop("SIGKILL");
    await target.close();
  });

  // A config of its own (another port), so only the runtime dir is shared. `timeout`
  // bounds the run if it were wrongly accepted: exit 124 instead of 1.
  const otherConfig = path.join(first.dir, "other.json");
  writeJson(otherConfig, { Apps: [{ Name: "b", Ports: [otherPort], Targets: [`127.0.0.1:${target.port}`] }] });
  const second = await runCommand("timeout", ["20", process.execPath, cli, "run", "--config", otherConfig, "--runtime-dir", first.runtimeDir, "--admin", "127.0.0.1:0", "--steering", "ports", "--workers", "1"], {});
  t.is(second.code, 1, second.stderr);
  t.regex(second.stderr, new RegExp(`runtime dir ${first.runtimeDir} is in use by another switchyard supervisor \\(pid ${first.pid}\\) in this network namespace`));
  t.regex(second.stdout, /"event":"start_failed","code":"RUNTIME_DIR_IN_USE"/);

  const status = await runCommand(process.execPath, [cli, "ctl", "--runtime-dir", first.runtimeDir, "status"]);
  t.is(status.code, 0, status.stderr);
  const reload = await runCommand(process.execPath, [cli, "ctl", "--runtime-dir", first.runtimeDir, "reload"]);
  t.is(reload.code, 0, reload.stderr + reload.stdout);
  t.is((await exchange(port, "still mine")).toString(), "still mine");
});

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  test(`after the supervisor ends by ${signal}, a new one takes the same runtime dir`, async (t) => {
    const target = await startTarget("echo");
    // The next one serves another port: a SIGKILLed supervisor's worker may still hold the first.
    const [port, nextPort] = (await freePorts(2)) as [number, number];
    const config = (p: number) => ({ Apps: [{ Name: "a", Ports: [p], Targets: [`127.0.0.1:${target.port}`] }] });
    const first = await startSupervisor({ config: config(port), workers: 1 });
    let next: RunningSupervisor | undefined;
    t.teardown(async () => {
      await first.stop("SIGKILL");
      await next?.stop("SIGKILL");
      await target.close();
    });
    await first.stop(signal);
    next = await startSupervisor({ config: config(nextPort), workers: 1, runtimeDir: first.runtimeDir });
    t.is((await exchange(nextPort, "after")).toString(), "after");
    const status = await runCommand(process.execPath, [cli, "ctl", "--runtime-dir", first.runtimeDir, "--json", "status"]);
    t.is((JSON.parse(status.stdout) as { pid: number }).pid, next.pid);
  });
}

test("a supervisor in another network namespace may share the runtime dir: each reloads, and no worker keeps a file there", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const config = { Apps: [{ Name: "a", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] };
  const host = await startSupervisor({ config, workers: 1 });
  // Its own namespace: its admin and ports are out of our reach, its log lines are not.
  const other = await startSupervisor({ config, workers: 1, runtimeDir: host.runtimeDir, wrap: ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"] });
  t.teardown(async () => {
    await other.stop("SIGKILL");
    await host.stop("SIGKILL");
    await target.close();
  });
  // Health checks travel on each worker's channel: nothing of theirs can clash here.
  // What is left: each namespace's lock, and the control socket of the last one started.
  const ourNetns = fs.statSync("/proc/self/ns/net").ino;
  const files = fs.readdirSync(host.runtimeDir).sort();
  t.is(files.filter((f) => f.endsWith(".lock")).length, 2, files.join(" "));
  t.true(files.includes(`supervisor-netns-${ourNetns}.lock`), files.join(" "));
  t.deepEqual(files.filter((f) => !f.endsWith(".lock")), RUNTIME_DIR_FILES);
  for (const sup of [host, other]) {
    const mark = sup.logs.length;
    process.kill(sup.pid, "SIGHUP");
    const end = await sup.waitFor((l) => l.event === "reload_succeeded" || l.event === "reload_failed", 15_000, mark);
    t.is(end.event, "reload_succeeded", JSON.stringify(end));
  }
  t.is((await exchange(port, "host")).toString(), "host");
});
