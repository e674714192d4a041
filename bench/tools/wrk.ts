// wrk against an HTTP port: requests/s, latency percentiles and every kind of
// error it reports.
import { run } from "../procs.js";
import { HOST } from "../net.js";

export interface WrkResult {
  rps: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  errors: { connect: number; read: number; write: number; timeout: number; non2xx: number };
}

export interface WrkOptions {
  port: number;
  connections: number;
  seconds: number;
  /** A new TCP connection per request (`Connection: close`). */
  close: boolean;
  threads?: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function duration(text: string | undefined): number {
  const m = text?.match(/^([\d.]+)(us|ms|s|m)$/);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
}

export function parseWrk(out: string): WrkResult {
  const pct = (p: string) => duration(out.match(new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m"))?.[1]);
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const rps = Number(out.match(/^Requests\/sec:\s+([\d.]+)/m)?.[1] ?? NaN);
  return {
    rps,
    requests: Number(out.match(/^\s+(\d+) requests in/m)?.[1] ?? NaN),
    p50Ms: pct("50"),
    p99Ms: pct("99"),
    errors: {
      connect: Number(sock?.[1] ?? 0),
      read: Number(sock?.[2] ?? 0),
      write: Number(sock?.[3] ?? 0),
      timeout: Number(sock?.[4] ?? 0),
      non2xx: Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0),
    },
  };
}

export async function wrk(o: WrkOptions): Promise<WrkResult> {
  const args = ["-t", String(o.threads ?? 2), "-c", String(o.connections), "-d", `${o.seconds}s`, "--latency", "--timeout", "5s"];
  if (o.close) args.push("-H", "Connection: close");
  args.push(`http://${HOST}:${o.port}/`);
  const r = await run("wrk", "wrk", args, (o.seconds + 20) * 1000, { maxFiles: true });
  const parsed = parseWrk(r.output);
  if (r.timedOut || !Number.isFinite(parsed.rps)) throw new Error(`wrk failed (${r.timedOut ? "timed out" : `exit ${r.code}`}): ${r.output.trim().slice(-300)}`);
  return parsed;
}

export const errorTotal = (r: WrkResult): number => Object.values(r.errors).reduce((a, b) => a + b, 0);
