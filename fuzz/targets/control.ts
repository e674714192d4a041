// The control socket against garbage, partial and oversized lines, slow
// writers and bursts of connections, all from root (an allowed uid).
import net from "node:net";
import fc from "fast-check";
import type { FuzzTarget } from "../target.js";
import { explore, replayOne } from "../explore.js";
import { play, type Answer, type WireCase } from "../wire.js";
import { MAX_RSS_BYTES, type FuzzSupervisor } from "../supervisor-process.js";
import { wireCase, isWireCase } from "../wire-arbitrary.js";
import { CONTROL_COMMANDS, CONTROL_LIMITS, MAX_REQUEST_BYTES, type ControlResponse } from "../../common/control-protocol.js";

/** A connection whose line is incomplete is held this long: well under the server's 5 s deadline. */
const HOLD_MS = 300;
/** A well-formed `status` must be answered within this, busy retries included. */
const ANSWER_WITHIN_MS = 2000;

const text = (s: string) => fc.constant(Buffer.from(s));
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

/** One piece of a request line; a case joins a few, newline or not. */
const piece: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: text('{"command":"status"}') },
  text("null"), text("[]"), text("1"), text('"status"'), text("{}"), text('{"command":null}'), text('{"command":"nope"}'),
  text('{"command":"status","x":1}'), text('{"__proto__":{"command":"status"}}'), text('{"command":"status"} trailing'), text('{"command":["status"]}'),
  fc.jsonValue().map(json),
  fc.record({ command: fc.oneof(fc.constantFrom("status", "STATUS", "status ", ""), fc.string(), fc.jsonValue()) }, { requiredKeys: [] }).map(json),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 4 }).map((d) => json({ command: "status", ...d })),
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  fc.constantFrom("\n", "\r\n", "\0", "\xff", "\ud800").map((s) => Buffer.from(s, s === "\xff" ? "latin1" : "utf8")),
  fc.integer({ min: MAX_REQUEST_BYTES - 8, max: 4 * MAX_REQUEST_BYTES }).map((n) => Buffer.alloc(n, 0x61)),
);

const arbitrary: fc.Arbitrary<WireCase> = wireCase(
  fc.tuple(fc.array(piece, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([ps, nl]) => Buffer.concat([...ps, Buffer.from(nl ? "\n" : "")])),
  300,
);

/** The request as the protocol defines it, written independently of the server's parser. */
function expected(bytes: Buffer, ending: WireCase["ending"]): "ok" | "usage" | "none" {
  const nl = bytes.indexOf(0x0a);
  const line = nl < 0 ? bytes : bytes.subarray(0, nl);
  if (line.length > MAX_REQUEST_BYTES) return "usage";
  if (nl < 0) return ending === "end" ? "usage" : "none";
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(line));
  } catch {
    return "usage";
  }
  const valid = typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && (CONTROL_COMMANDS as readonly string[]).includes((v as { command: unknown }).command as string);
  return valid ? "ok" : "usage";
}

function judge(a: Answer, expect: "ok" | "usage" | "none", c: WireCase, pid: number): string | undefined {
  // A reset connection may or may not have been answered before it went; an unconnected one saw nothing;
  // past twice the limit, a refused connection may be closed unanswered.
  if (!a.connected || (a.data.length === 0 && (c.ending === "destroy" || c.connections > 2 * CONTROL_LIMITS.maxConnections))) return undefined;
  const body = a.data.toString("utf8");
  if (body === "" && expect === "none") return undefined;
  if (!body.endsWith("\n") || body.indexOf("\n") !== body.length - 1) return `answer is not one line: ${JSON.stringify(body.slice(0, 300))}`;
  let r: ControlResponse;
  try {
    r = JSON.parse(body) as ControlResponse;
  } catch {
    return `answer is not JSON: ${JSON.stringify(body.slice(0, 300))}`;
  }
  if (!r.ok && r.code === "CONTROL_BUSY") return undefined;
  if (expect === "none") return `answered an incomplete line: ${body.slice(0, 300)}`;
  if (expect === "usage") return !r.ok && r.code === "USAGE" ? undefined : `expected USAGE, got ${body.slice(0, 300)}`;
  if (!r.ok) return `expected an answer, got ${body.slice(0, 300)}`;
  const result = r.result as { pid?: number; generation?: number };
  return result.pid === pid || typeof result.generation === "number" ? undefined : `wrong result: ${body.slice(0, 300)}`;
}

/** One request on a fresh connection: the answer, or null if the connection closed without one. */
export function controlRequest(socketPath: string, line: string, timeoutMs: number): Promise<ControlResponse | null> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let body = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer to ${line.trim()} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding("utf8");
    s.on("connect", () => s.write(line));
    s.on("data", (d: string) => (body += d));
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(body === "" ? null : (JSON.parse(body) as ControlResponse));
      } catch {
        reject(new Error(`malformed answer ${JSON.stringify(body.slice(0, 300))}`));
      }
    });
  });
}

/** `status` answers for this supervisor within the bound; a busy answer is retried, as an operator would. */
export async function expectStatus(socketPath: string, pid: number, withinMs = ANSWER_WITHIN_MS): Promise<void> {
  const until = Date.now() + withinMs;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0) throw new Error(`status not answered within ${withinMs} ms`);
    const r = await controlRequest(socketPath, '{"command":"status"}\n', left);
    if (r?.ok) {
      const got = (r.result as { pid?: number }).pid;
      if (got !== pid) throw new Error(`status answered for pid ${got}, not ${pid}`);
      return;
    }
    if (r === null || r.code !== "CONTROL_BUSY") throw new Error(`status failed: ${JSON.stringify(r)}`);
  }
}

async function check(s: FuzzSupervisor, c: WireCase): Promise<void> {
  if (!isWireCase(c)) throw new Error(`not a control case: ${JSON.stringify(c).slice(0, 200)}`);
  const played = play(() => net.connect(s.controlSocket), c, HOLD_MS);
  let answers: Answer[];
  try {
    answers = await played.answers;
  } finally {
    played.release();
  }
  const expect = expected(Buffer.from(c.data, "base64"), c.ending);
  for (const a of answers) {
    const wrong = judge(a, expect, c, s.pid);
    if (wrong) throw new Error(wrong);
  }
  if (s.exitedWith()) throw new Error(s.exitedWith()!);
  await expectStatus(s.controlSocket, s.pid);
  const rss = s.rssBytes();
  if (rss === undefined) throw new Error(s.exitedWith() ?? "supervisor gone");
  if (rss > MAX_RSS_BYTES) throw new Error(`supervisor RSS ${Math.round(rss / 1048576)} MB > ${MAX_RSS_BYTES / 1048576} MB`);
}

export const controlTarget: FuzzTarget = {
  name: "control",
  description: "control socket: garbage, partial, oversized and slow request lines, bursts of up to 300 connections; each answered USAGE/BUSY or served, and `status` still answers within 2 s, RSS < 200 MB",
  run: (opts) => explore(opts, arbitrary, check),
  replay: (input) => replayOne(input as WireCase, check),
};

export default controlTarget;
