// The backends every party forwards to: nginx (`return 200`, a small body), an iperf3
// server, two tag servers and a hold server. Started once per run.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { start, stop, waitForLine, type Proc } from "./procs.js";
import { waitForPort } from "./net.js";
import { HOLD_PORT, IPERF_PORT, NGINX_PORTS, TAG_PORTS } from "./layout.js";

const serverScript = fileURLToPath(new URL("./servers/tcp-server.js", import.meta.url));
/** The body nginx serves: 128 bytes (nginx turns the escape into a newline). */
const BODY = "x".repeat(127) + "\\n";

function nginxConf(dir: string): string {
  return `daemon off;
master_process on;
user nobody nogroup;
worker_processes 1;
worker_rlimit_nofile 16384;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
  server {
${NGINX_PORTS.map((p) => `    listen 127.0.0.1:${p} backlog=4096;`).join("\n")}
    default_type text/plain;
    location / { return 200 "${BODY}"; }
  }
}
`;
}

export class Backends {
  private readonly procs: Proc[] = [];
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-bench-"));

  async start(): Promise<void> {
    fs.chmodSync(this.dir, 0o755);
    fs.mkdirSync(path.join(this.dir, "tmp"));
    fs.writeFileSync(path.join(this.dir, "nginx.conf"), nginxConf(this.dir));
    this.procs.push(start("nginx", "nginx", ["-p", this.dir, "-c", path.join(this.dir, "nginx.conf"), "-e", path.join(this.dir, "error.log")], { maxFiles: true }));
    const iperf = start("iperf3", "iperf3", ["-s", "-p", String(IPERF_PORT), "-B", "127.0.0.1", "--forceflush"]);
    this.procs.push(iperf);
    for (const [name, port] of Object.entries(TAG_PORTS)) this.procs.push(start(`tag-${name}`, process.execPath, [serverScript, "tag", name, String(port)]));
    this.procs.push(start("hold", process.execPath, [serverScript, "hold", String(HOLD_PORT)], { maxFiles: true }));
    // A bare connection to iperf3 would count as a failed test: wait for its banner instead.
    await Promise.all([waitForLine(iperf, (l) => l.includes("Server listening"), 10_000), ...[...NGINX_PORTS, ...Object.values(TAG_PORTS), HOLD_PORT].map((p) => waitForPort(p, 10_000))]);
  }

  /** The hold server keeps every idle connection it got; restart it between measurements. */
  async restartHold(): Promise<void> {
    const old = this.procs.find((p) => p.name === "hold");
    if (old) {
      await stop(old);
      this.procs.splice(this.procs.indexOf(old), 1);
    }
    this.procs.push(start("hold", process.execPath, [serverScript, "hold", String(HOLD_PORT)], { maxFiles: true }));
    await waitForPort(HOLD_PORT, 10_000);
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => stop(p)));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
