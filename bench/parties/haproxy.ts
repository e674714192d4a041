// HAProxy in TCP mode, master-worker (-W) with a master CLI (-S), the config
// equivalent of switchyard's: same ports, same targets, round robin, nbthread =
// switchyard's worker count. Reloads are seamless: `reload` on the master CLI,
// and the stats socket's `expose-fd listeners` lets the new worker take the
// listening sockets over from the old one (the master passes -x itself).
//
// Not SIGUSR2: the master re-executes itself on every reload and blocks signals
// until it is up again, and a SIGUSR2 sent in that window is lost (seen with
// 2.6: reloads every 100 ms completed 8 of 38). The master CLI's listening
// socket survives the re-exec, so a `reload` sent meanwhile waits in its backlog.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { PROXY_PORTS, scaleApp, targets, type Service, type Variant } from "../layout.js";
import { start, stop, waitForLine, type Proc } from "../procs.js";
import { processTree } from "../procfs.js";
import { waitForPort } from "../net.js";
import { writeAtomically } from "./config-file.js";
import { Unavailable, type Party, type PartySpec, type ReloadCounts } from "./party.js";

export function haproxyConfig(dir: string, spec: PartySpec, variant: Variant): string {
  const t = targets(variant);
  const apps = (Object.keys(PROXY_PORTS) as Service[]).map(
    (s) => `listen ${s}\n    bind 127.0.0.1:${PROXY_PORTS[s]}\n${t[s].map((addr, i) => `    server ${s}${i} ${addr}`).join("\n")}\n`,
  );
  const scale = scaleApp(spec.scalePorts, variant);
  // A port range is one bind line, but still one listening socket per port.
  if (scale) apps.push(`listen scale\n    bind 127.0.0.1:${scale.first}-${scale.last}\n    server scale0 ${scale.target}\n`);
  return `global
    nbthread ${spec.workers}
    maxconn ${spec.maxconn}
    stats socket ${dir}/stats.sock mode 600 level admin expose-fd listeners
    hard-stop-after 30s

defaults
    mode tcp
    balance roundrobin
    timeout connect 3s
    timeout client 300s
    timeout server 300s

${apps.join("\n")}`;
}

export class HAProxy implements Party {
  readonly name = "haproxy";
  readonly proxied = true;
  spawnedAt = 0;
  private proc: Proc | undefined;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-bench-haproxy-"));
  private readonly cfg = path.join(this.dir, "haproxy.cfg");
  private readonly masterSocket = path.join(this.dir, "master.sock");
  private readonly counts: ReloadCounts = { succeeded: 0, failed: 0 };
  private loads = 0;

  constructor(private readonly spec: PartySpec) {}

  port(service: Service): number {
    return PROXY_PORTS[service];
  }

  async start(): Promise<void> {
    writeAtomically(this.cfg, haproxyConfig(this.dir, this.spec, 0));
    this.spawnedAt = performance.now();
    const proc = start("haproxy", "haproxy", ["-W", "-S", this.masterSocket, "-f", this.cfg], { maxFiles: true });
    this.proc = proc;
    this.loads = 0;
    this.counts.succeeded = this.counts.failed = 0;
    proc.onLine((l) => {
      if (l.includes("Loading success") && this.loads++ > 0) this.counts.succeeded++;
      if (l.includes("Loading failure")) this.counts.failed++;
    });
    const exited = proc.exited.then(({ code, signal }) => {
      throw new Unavailable(`haproxy exited (${code ?? signal}): ${lastLines(proc.output(), 2)}`);
    });
    try {
      // The master binds before its worker runs: a port that answers proves little.
      await Promise.race([waitForLine(proc, (l) => l.includes("Loading success"), 60_000), exited]);
      await Promise.race([waitForPort(PROXY_PORTS.web, 10_000), exited]);
    } catch (err) {
      await this.stop();
      throw err instanceof Unavailable ? err : new Unavailable(`${(err as Error).message}: ${lastLines(proc.output(), 2)}`);
    }
  }

  async reload(variant: Variant): Promise<void> {
    writeAtomically(this.cfg, haproxyConfig(this.dir, this.spec, variant));
    // The master CLI refuses connections until the master runs its loop (at start-up and
    // while it re-executes): retry, so that no reload is lost.
    const deadline = performance.now() + 30_000;
    while (!(await this.sendReload())) {
      if (performance.now() > deadline) throw new Error("haproxy master CLI refused `reload` for 30 s");
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Resolves once the master CLI takes connections: a reload sent then is acted on at once. */
  async whenReloadable(): Promise<void> {
    const deadline = performance.now() + 30_000;
    while (!(await this.sendReload(""))) {
      if (performance.now() > deadline) throw new Error("haproxy master CLI refused connections for 30 s");
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** True once the master took the command: it closes the CLI connection when it re-executes. */
  private sendReload(command = "reload\n"): Promise<boolean> {
    return new Promise((resolve) => {
      const s = net.connect({ path: this.masterSocket }, () => s.end(command));
      let connected = false;
      s.on("connect", () => (connected = true));
      s.on("close", () => resolve(connected));
      s.on("error", () => undefined);
      s.resume();
    });
  }

  /** The master logs "Loading success." once at start-up and once per successful reload. */
  reloadCounts(): ReloadCounts {
    return { ...this.counts };
  }

  pids(): number[] {
    return this.proc ? processTree(this.proc.pid) : [];
  }

  async stop(): Promise<void> {
    if (this.proc) await stop(this.proc);
    this.proc = undefined;
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** HAProxy's own reason: its ALERT lines if any, else its last lines. */
function lastLines(text: string, n: number): string {
  const lines = text.trim().split("\n");
  const alerts = lines.filter((l) => l.includes("[ALERT]"));
  return (alerts.length ? alerts : lines).slice(-n).join(" | ").replace(/\[ALERT\]\s+\(\d+\) : /g, "").slice(0, 300);
}
