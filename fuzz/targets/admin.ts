// Admin HTTP against malformed request lines and headers, header floods,
// bodies, pipelining, slow writers and bursts of connections.
import http from "node:http";
import net from "node:net";
import fc from "fast-check";
import type { FuzzTarget } from "../target.js";
import { explore, replayOne } from "../explore.js";
import { play, type Answer, type WireCase } from "../wire.js";
import { MAX_RSS_BYTES, type FuzzSupervisor } from "../supervisor-process.js";
import { wireCase, isWireCase } from "../wire-arbitrary.js";

/** A connection whose request is incomplete is held this long: well under the 5 s headers timeout. */
const HOLD_MS = 300;
/**
 * /healthz must answer within this while the case's connections are open. The
 * operator's figure is 100 ms (see test/ops-admin-hardening.test.ts); here the
 * fuzzer's own 300 connections share the two cores, so a bound that only a
 * stall can miss.
 */
const HEALTHZ_WITHIN_MS = 1000;

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const method = fc.oneof({ weight: 4, arbitrary: fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT", "TRACE", "PATCH", "PRI") }, token, fc.string({ maxLength: 10 }));
const target = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("/healthz", "/status", "/metrics", "/", "*", "/healthz?x=1", "http://127.0.0.1/healthz", "//healthz", "/%00", "/..%2f", "/healthz#x") },
  fc.string({ maxLength: 40 }).map((s) => `/${s}`),
  fc.integer({ min: 1000, max: 20_000 }).map((n) => `/${"a".repeat(n)}`),
);
const version = fc.oneof({ weight: 4, arbitrary: fc.constant("HTTP/1.1") }, fc.constantFrom("HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", "", "HTTP/9.9", "http/1.1", "HTTP/1.1 extra"));
const header = fc.oneof(
  fc.constantFrom(
    "Connection: close", "Connection: keep-alive", "Content-Length: 5", "Content-Length: -1", "Content-Length: 99999999999", "Content-Length: 1, 2",
    "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked", "Transfer-Encoding: chunked\r\nContent-Length: 3", "Expect: 100-continue",
    "Content-Length: 1\r\nContent-Length: 2", "Upgrade: websocket\r\nConnection: Upgrade", "Host: a\r\nHost: b", " folded", "X-Null: a\0b",
  ),
  fc.tuple(token, fc.string({ maxLength: 40 })).map(([n, v]) => `${n}: ${v}`),
  fc.string({ maxLength: 60 }),
  fc.integer({ min: 1000, max: 20_000 }).map((n) => `X-Big: ${"b".repeat(n)}`),
);
const headers = fc.oneof(
  { weight: 4, arbitrary: fc.array(header, { maxLength: 8 }) },
  // A flood of small headers: many lines under the byte bound.
  fc.integer({ min: 50, max: 1000 }).map((n) => Array.from({ length: n }, (_, i) => `X-${i}: v`)),
);
const body = fc.oneof(
  { weight: 3, arbitrary: fc.constant(Buffer.alloc(0)) },
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.constantFrom("5\r\nhello\r\n0\r\n\r\n", "ffffffff\r\n", "0\r\n\r\n", "zz\r\n").map((s) => Buffer.from(s)),
  fc.integer({ min: 10_000, max: 200_000 }).map((n) => Buffer.alloc(n, 0x62)),
);
const request: fc.Arbitrary<Buffer> = fc
  .record({ method, target, version, host: fc.boolean(), headers, eol: fc.constantFrom("\r\n", "\n"), complete: fc.boolean(), body })
  .map((r) => {
    const lines = [`${r.method} ${r.target} ${r.version}`.trimEnd(), ...(r.host ? ["Host: 127.0.0.1"] : []), ...r.headers];
    return Buffer.concat([Buffer.from(lines.join(r.eol) + r.eol + (r.complete ? r.eol : "")), r.body]);
  });

const arbitrary: fc.Arbitrary<WireCase> = wireCase(
  fc.oneof(
    { weight: 4, arbitrary: request },
    fc.array(request, { minLength: 2, maxLength: 5 }).map((rs) => Buffer.concat(rs)),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.tuple(request, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([r, at, junk]) => {
      const i = at % (r.length + 1);
      return Buffer.concat([r.subarray(0, i), junk, r.subarray(i)]);
    }),
  ),
  300,
);

/** What came back on one connection is nothing or HTTP/1.1 answers, never a 500. */
function judge(a: Answer): string | undefined {
  if (!a.connected || a.data.length === 0) return undefined;
  const head = a.data.subarray(0, 64).toString("latin1");
  if (!/^HTTP\/1\.1 [1-5]\d\d /.test(head)) return `answer is not HTTP/1.1: ${JSON.stringify(head)}`;
  if (a.data.includes("HTTP/1.1 500 ")) return `a 500 answer: ${JSON.stringify(a.data.subarray(0, 400).toString("latin1"))}`;
  return undefined;
}

/** GET /healthz on a fresh connection: 200 within the bound, or why not. */
export function healthz(port: number, timeoutMs: number): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/healthz", agent: false, headers: { connection: "close" }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.on("timeout", () => req.destroy(new Error(`/healthz not answered within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

async function expectHealthy(s: FuzzSupervisor, when: string): Promise<void> {
  const r = await healthz(s.adminPort, HEALTHZ_WITHIN_MS).catch((err: Error) => {
    throw new Error(`${when}: ${s.exitedWith() ?? err.message}`);
  });
  if (r.status !== 200) throw new Error(`${when}: /healthz answered ${r.status}`);
}

async function check(s: FuzzSupervisor, c: WireCase): Promise<void> {
  if (!isWireCase(c)) throw new Error(`not an admin case: ${JSON.stringify(c).slice(0, 200)}`);
  const played = play(() => net.connect(s.adminPort, "127.0.0.1"), c, HOLD_MS);
  let answers: Answer[];
  try {
    await played.written;
    await expectHealthy(s, "while the case's connections were open");
    answers = await played.answers;
  } finally {
    played.release();
  }
  for (const a of answers) {
    const wrong = judge(a);
    if (wrong) throw new Error(wrong);
  }
  await expectHealthy(s, "after the case");
  const rss = s.rssBytes();
  if (rss === undefined) throw new Error(s.exitedWith() ?? "supervisor gone");
  if (rss > MAX_RSS_BYTES) throw new Error(`supervisor RSS ${Math.round(rss / 1048576)} MB > ${MAX_RSS_BYTES / 1048576} MB`);
}

export const adminTarget: FuzzTarget = {
  name: "admin",
  description: "admin HTTP: malformed request lines and headers, header floods, bodies, pipelining, slow writers, bursts of up to 300 connections; answers are HTTP/1.1 and never 500, /healthz answers 200 within 1 s meanwhile and after, RSS < 200 MB",
  run: (opts) => explore(opts, arbitrary, check),
  replay: (input) => replayOne(input as WireCase, check),
};

export default adminTarget;
