// HAProxy and nginx as real peers in tests (the PROXY protocol): started in the
// foreground on a config of the test's, stopped by pid at teardown.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { ExecutionContext } from "ava";
import { tempDir } from "./supervisor.js";

/** Resolves once 127.0.0.1:`port` accepts (bounded). */
async function listening(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  for (const until = Date.now() + 10_000; Date.now() < until; ) {
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`haproxy did not listen on ${port}: ${stderr()}`);
}

/** Starts `cmd` in the foreground, its stderr kept; stopped (TERM, awaited) and `dir` removed at the test's end. */
function startPeer(t: ExecutionContext, cmd: string, args: string[], dir: string): { child: ChildProcess; stderr: () => string } {
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { child, stderr: () => stderr };
}

/** Runs `haproxy -db -f` on `config`; resolves once every port in `ports` accepts. */
export async function startHAProxy(t: ExecutionContext, config: string, ports: number[]): Promise<void> {
  const dir = tempDir("switchyard-haproxy-");
  const file = path.join(dir, "haproxy.cfg");
  fs.writeFileSync(file, config);
  const peer = startPeer(t, "haproxy", ["-db", "-f", file], dir);
  for (const port of ports) await listening(port, peer.child, peer.stderr);
}

/**
 * Runs nginx in the foreground (one process, as root: no user switch) with its
 * stream module and the `stream { ... }` body given; resolves once every port accepts.
 */
export async function startNginx(t: ExecutionContext, stream: string, ports: number[]): Promise<void> {
  const dir = tempDir("switchyard-nginx-");
  const file = path.join(dir, "nginx.conf");
  fs.writeFileSync(file, `load_module /usr/lib/nginx/modules/ngx_stream_module.so;\ndaemon off;\nmaster_process off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nstream {\n${stream}\n}\n`);
  const peer = startPeer(t, "nginx", ["-c", file, "-p", dir], dir);
  const log = (): string => `${peer.stderr()}${fs.existsSync(`${dir}/error.log`) ? fs.readFileSync(`${dir}/error.log`, "utf8") : ""}`;
  for (const port of ports) await listening(port, peer.child, log);
}
