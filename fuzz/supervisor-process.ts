// One real supervisor for a fuzz target: ports steering, one worker, a runtime
// dir and an echo target of its own. stop() is safe to call more than once and
// leaves no process or directory behind.
import fs from "node:fs";
import path from "node:path";
import { startSupervisor, type RunningSupervisor } from "../test/helpers/supervisor.js";
import { freePorts, startTarget, type Target } from "../test/helpers/net.js";
import { CONTROL_SOCKET } from "../common/control-protocol.js";

export interface FuzzSupervisor {
  sup: RunningSupervisor;
  pid: number;
  adminPort: number;
  controlSocket: string;
  /** null while running; otherwise how it ended, for a failure's reason. */
  exitedWith(): string | null;
  /** VmRSS in bytes, undefined once gone. */
  rssBytes(): number | undefined;
  stop(): Promise<void>;
}

/** Above this the supervisor is holding on to what clients sent it. */
export const MAX_RSS_BYTES = 200 * 1024 * 1024;

export async function startFuzzSupervisor(): Promise<FuzzSupervisor> {
  const target: Target = await startTarget("echo");
  let sup: RunningSupervisor;
  try {
    const [port] = (await freePorts(1)) as [number];
    sup = await startSupervisor({
      config: { Apps: [{ Name: "fuzz", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`] }] },
      workers: 1,
      steering: "ports",
      drainTimeout: 1,
      args: ["--access-log", "off"],
    });
  } catch (err) {
    await target.close();
    throw err;
  }
  let exit: string | null = null;
  void sup.exited.then((e) => (exit = `supervisor exited (code ${e.code}, signal ${e.signal}); stderr: ${sup.stderr().slice(-2000)}`));
  let stopped: Promise<void> | undefined;
  return {
    sup,
    pid: sup.pid,
    adminPort: sup.adminPort,
    controlSocket: path.join(sup.runtimeDir, CONTROL_SOCKET),
    exitedWith: () => exit,
    rssBytes: () => {
      try {
        const m = fs.readFileSync(`/proc/${sup.pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m);
        return m ? Number(m[1]) * 1024 : undefined;
      } catch {
        return undefined;
      }
    },
    stop: () =>
      (stopped ??= (async () => {
        // TERM drains (at most the 1 s drain timeout); KILL if even that hangs.
        const killer = setTimeout(() => sup.child.kill("SIGKILL"), 5000);
        await sup.stop("SIGTERM");
        clearTimeout(killer);
        await target.close();
        fs.rmSync(sup.dir, { recursive: true, force: true });
      })()),
  };
}
