// Scenario, run by test/steering-mode-change.test.ts inside `unshare -n` (BPF is
// never attached to the machine's namespace): a supervisor in ports mode under the
// suite's service manager with the fd store, whose unit is then edited to
// `--steering auto` (where BPF works) and the supervisor killed with SIGKILL: the
// restart gets the ports-mode listeners ("tcp-…") back from the store. Then the
// same with `--steering bpf`. Connections dialled while the restarted one starts
// wait in those listeners' queues: auto must serve them, bpf refuse to start.
import path from "node:path";
import { listeningSockets } from "../../supervisor/listeners/listening-sockets.js";
import { ServiceManager } from "../helpers/service-manager.js";
import { exchange, freePorts, startTarget } from "../helpers/net.js";
import { app, config } from "../helpers/reload.js";
import { tempDir, writeJson, type LogLine } from "../helpers/supervisor.js";
import { netnsIno, netnsLinks, runScenario } from "./netns-lib.js";

/** Long enough for a start that serves; one that fails leaves them waiting (the manager restarts it again and again). */
const QUEUED_TIMEOUT_MS = 5000;

runScenario(async () => {
  const target = await startTarget("a");
  const ports = await freePorts(2);
  const dir = tempDir("switchyard-mode-change-");
  const configPath = path.join(dir, "config.json");
  writeJson(configPath, config(app("a", ports, [target])));
  const args = (steering: string): string[] =>
    ["--config", configPath, "--admin", "127.0.0.1:0", "--runtime-dir", path.join(dir, "run"), "--workers", "1", "--steering", steering, "--fd-store", "--access-log", "off"];
  // The restart delay: by the next start, the killed one's orphaned worker has stopped accepting.
  const manager = new ServiceManager({ args: args("ports"), restartDelayMs: 300 });
  const inodes = (): number[] => listeningSockets().filter((s) => ports.includes(s.port)).map((s) => s.inode).sort();
  const links = (): number => netnsLinks(netnsIno()).length;
  let stopped = false;
  /** Once only: a second stop would close the manager's fds again. */
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await manager.stop();
  };

  /**
   * The unit now runs `steering`; kill -9, and report the first start after. With
   * `dial`, each port is dialled once the new process runs (the killed one's
   * orphaned worker has long stopped accepting): the queues hold them until it serves.
   */
  const crashInto = async (steering: string, dial: boolean) => {
    manager.setArgs(args(steering));
    const from = manager.logs.length;
    const startsBefore = manager.starts.length;
    const isNew = (l: LogLine): boolean => manager.starts.slice(startsBefore).some((s) => s.pid === l.pid);
    if (manager.mainPid !== 0) process.kill(manager.mainPid, "SIGKILL");
    const received = await manager.waitFor((l) => isNew(l) && l.event === "listen_fds_received", 15_000, from);
    const queued = dial ? ports.map((p) => exchange(p, `queued ${p}`, "127.0.0.1", QUEUED_TIMEOUT_MS).then((r) => r.toString() === `queued ${p}`, (e: NodeJS.ErrnoException) => e.code ?? e.message)) : [];
    const first = await manager.waitFor((l) => isNew(l) && (l.event === "supervisor_ready" || l.event === "start_failed"), 15_000, from);
    const queuedResults = await Promise.all(queued);
    const fresh = manager.logs.slice(from).filter(isNew);
    return {
      first,
      queued: queuedResults,
      received: received.names,
      fallbacks: fresh.filter((l) => l.event === "steering_fallback"),
      events: fresh.filter((l) => l.pid === first.pid).map((l) => l.event),
      starts: manager.starts.length - startsBefore,
      inodes: inodes(),
      links: links(),
    };
  };

  try {
    manager.start();
    await manager.waitFor((l) => l.event === "supervisor_ready", 20_000, 0);
    // The datagrams can reach the manager after the log line that follows them.
    for (const until = Date.now() + 5000; manager.storedNames().filter((n) => n.startsWith("tcp-")).length < ports.length && Date.now() < until; ) await new Promise((r) => setTimeout(r, 5));
    const before = { stored: manager.storedNames().sort(), inodes: inodes() };
    const auto = await crashInto("auto", true);
    const storedAfterAuto = manager.storedNames().sort();
    const bpf = await crashInto("bpf", false);
    // What the refusal says to do: a stop empties the store, and a start with bpf then steers.
    await stop();
    const fresh = new ServiceManager({ args: args("bpf") });
    let afterStop;
    try {
      fresh.start();
      const first = await fresh.waitFor((l) => l.event === "supervisor_ready" || l.event === "start_failed", 15_000, 0);
      const echoes = first.event === "supervisor_ready" ? await Promise.all(ports.map(async (p) => (await exchange(p, `bpf ${p}`)).toString() === `bpf ${p}`)) : [];
      afterStop = { first, echoes, links: links() };
    } finally {
      await fresh.stop();
    }
    return { before, auto, storedAfterAuto, bpf, afterStop };
  } finally {
    await stop();
    await target.close();
  }
}, 60_000);
