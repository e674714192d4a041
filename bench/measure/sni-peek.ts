// What routing by TLS server name costs: TLS handshakes through switchyard to
// the same TLS target, on a port one app has alone and on a port three apps
// share by ServerNames (the worker reads the ClientHello before it dials).
// Reported: handshake time p50/p99 on each, and the difference.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { metric, type Recorder } from "../record.js";
import { start, stop, waitForLine } from "../procs.js";
import { cli } from "../parties/switchyard.js";
import { ADMIN_PORT } from "../layout.js";

const PLAIN_PORT = 4443;
const SHARED_PORT = 4444;
const S = "TLS routed by server name (ClientHello read before the dial), against a port without ServerNames";

export const sniMetrics = {
  plainP50: metric(S, "handshake p50, port without ServerNames", "ms", 3, false),
  namedP50: metric(S, "handshake p50, port shared by ServerNames", "ms", 3, false),
  plainP99: metric(S, "handshake p99, port without ServerNames", "ms", 3, false),
  namedP99: metric(S, "handshake p99, port shared by ServerNames", "ms", 3, false),
  added: metric(S, "added by the peek, p50", "ms", 3, false),
};

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** Milliseconds from connect to a finished handshake, for `n` connections one after another, alternating ports. */
async function handshakes(n: number): Promise<{ plain: number[]; named: number[] }> {
  const out = { plain: [] as number[], named: [] as number[] };
  for (let i = 0; i < 2 * n; i++) {
    const named = i % 2 === 1;
    const began = performance.now();
    const s = tls.connect({ host: "127.0.0.1", port: named ? SHARED_PORT : PLAIN_PORT, servername: "bench.example.com", rejectUnauthorized: false });
    await once(s, "secureConnect");
    (named ? out.named : out.plain).push(performance.now() - began);
    s.destroy();
  }
  return out;
}

export async function sniPeekRound(rec: Recorder, workers: number, samples: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-bench-sni-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-days", "1", "-subj", "/CN=bench.example.com"], { stdio: "ignore" });
  const target = tls.createServer({ key: fs.readFileSync(`${dir}/key.pem`), cert: fs.readFileSync(`${dir}/cert.pem`) }, (s) => s.on("error", () => undefined));
  target.listen(0, "127.0.0.1");
  await once(target, "listening");
  const to = `127.0.0.1:${(target.address() as net.AddressInfo).port}`;
  const config = { Apps: [
    { Name: "plain", Ports: [PLAIN_PORT], Addresses: ["127.0.0.1"], Targets: [to] },
    { Name: "named", Ports: [SHARED_PORT], Addresses: ["127.0.0.1"], Targets: [to], ServerNames: ["bench.example.com"] },
    { Name: "other", Ports: [SHARED_PORT], Addresses: ["127.0.0.1"], Targets: [to], ServerNames: ["*.example.org"] },
    { Name: "rest", Ports: [SHARED_PORT], Addresses: ["127.0.0.1"], Targets: [to] },
  ] };
  fs.writeFileSync(`${dir}/config.json`, JSON.stringify(config));
  const proc = start("switchyard-sni", process.execPath, [cli, "run", "--config", `${dir}/config.json`, "--workers", String(workers), "--steering", "ports", "--runtime-dir", `${dir}/run`, "--admin", `127.0.0.1:${ADMIN_PORT}`, "--access-log", "off"], { maxFiles: true });
  try {
    await waitForLine(proc, (l) => l.includes('"supervisor_ready"'), 60_000);
    await handshakes(50);
    const r = await handshakes(samples);
    const [p50, n50] = [percentile(r.plain, 50), percentile(r.named, 50)];
    rec.add(sniMetrics.plainP50, "switchyard-ports", p50);
    rec.add(sniMetrics.namedP50, "switchyard-ports", n50);
    rec.add(sniMetrics.plainP99, "switchyard-ports", percentile(r.plain, 99));
    rec.add(sniMetrics.namedP99, "switchyard-ports", percentile(r.named, 99));
    rec.add(sniMetrics.added, "switchyard-ports", n50 - p50);
  } finally {
    await stop(proc);
    target.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
