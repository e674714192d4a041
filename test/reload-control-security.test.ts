// The control socket reloads and reports on the proxy, so only the supervisor's
// own uid (or root) may use it. Two locks: the socket file is 0600, and the
// supervisor checks the peer's uid (SO_PEERCRED) itself, which must hold even
// when the file's mode has been widened by mistake.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { cli, runCli, runCommand, startSupervisor, type CommandResult, type RunningSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";

const NOBODY = 65534;
const CONTROL_SOCKET = "control.sock";

/** `switchyard ctl` run as uid/gid 65534 with no supplementary groups. */
function ctlAsNobody(sup: RunningSupervisor, command: "status" | "reload"): Promise<CommandResult> {
  return runCommand("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", process.execPath, cli, "ctl", "--runtime-dir", sup.runtimeDir, command]);
}

test("the control socket admits root and refuses another uid, by mode and by SO_PEERCRED", async (t) => {
  const target = await startTarget("echo");
  const ports = await freePorts(1);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "ctl", Ports: ports, Targets: [`127.0.0.1:${target.port}`] }] }, workers: 1 });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  // The test's temporary directory is 0700; open the path to it so that only the
  // socket's own protection stands between uid 65534 and the supervisor.
  fs.chmodSync(sup.dir, 0o755);
  fs.chmodSync(sup.runtimeDir, 0o755);
  const socketPath = path.join(sup.runtimeDir, CONTROL_SOCKET);

  const st = fs.statSync(socketPath);
  t.true(st.isSocket());
  t.is(st.mode & 0o777, 0o600, `control socket mode is ${(st.mode & 0o777).toString(8)}`);
  t.is(st.uid, process.getuid!());

  // Root: status answers, for this very supervisor.
  const mine = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "--json", "status"]);
  t.is(mine.code, 0, mine.stderr);
  const status = JSON.parse(mine.stdout) as { pid: number; generation: number; healthy: boolean };
  t.is(status.pid, sup.pid);
  t.is(status.generation, 1);
  t.true(status.healthy);

  // uid 65534 against the 0600 file: the kernel refuses connect().
  const byMode = await ctlAsNobody(sup, "status");
  t.not(byMode.code, 0);
  t.regex(byMode.stderr, /EACCES/, byMode.stderr);
  t.is(byMode.stdout, "");

  // Widen the file as a careless operator might: now only the supervisor's own check stands.
  const mark = sup.logs.length;
  fs.chmodSync(socketPath, 0o666);
  let from = mark;
  for (const command of ["status", "reload"] as const) {
    const denied = await ctlAsNobody(sup, command);
    t.is(denied.code, 1, `${command}: ${denied.stderr}`);
    t.regex(denied.stderr, /CONTROL_DENIED: permission denied: uid 65534 may not control this supervisor/, denied.stderr);
    t.is(denied.stdout, "", `${command} leaked output to uid 65534`);
    // Each refusal is logged, with the peer's uid.
    const line = await sup.waitFor((l) => l.event === "control_denied", 5000, from);
    from = sup.logs.indexOf(line) + 1;
  }
  // Exactly those two refusals, and nothing was acted on.
  const deniedLines = sup.logs.slice(mark).filter((l) => l.event === "control_denied");
  t.deepEqual(deniedLines.map((l) => l.uid), [NOBODY, NOBODY]);
  t.deepEqual(sup.logs.slice(mark).filter((l) => l.event === "reload_started" || l.event === "control_reload"), []);

  // Root still gets through the same (widened) socket, and can reload.
  const reload = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "reload"]);
  t.is(reload.code, 0, reload.stderr);
  t.regex(reload.stdout, /^reloaded: generation 2 serving/);
});
