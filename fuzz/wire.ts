// Plays one fuzz case on the wire: N connections at once, each writing the
// same bytes cut into pieces with pauses, then closing, resetting or holding.
// The case is plain JSON (bytes as base64) so a failure can be stored and replayed.
import net from "node:net";

export type Ending = "end" | "destroy" | "hold";

export interface WireCase {
  /** What each connection writes, base64. */
  data: string;
  /** Offsets into the bytes where one write ends and the next begins. */
  splits: number[];
  /** Pause between two writes. */
  gapMs: number;
  /** Connections that write the same bytes at the same time. */
  connections: number;
  /** After the last write: half-close, reset, or stay open until answered or held long enough. */
  ending: Ending;
}

/** No case writes for longer than this, so one run tries many. */
export const MAX_WRITING_MS = 500;
const CONNECT_TIMEOUT_MS = 2000;

export interface Answer {
  /** False when connect() failed (a full backlog, no fd left): such a connection saw nothing. */
  connected: boolean;
  data: Buffer;
}

export interface Played {
  /** Resolves once every write is done (or its connection gone): the moment to probe the server under load. */
  written: Promise<void>;
  /** Per connection, once each is closed or has been held `holdMs` after its last write. */
  answers: Promise<Answer[]>;
  /** Closes every connection still open. */
  release(): void;
}

export const pieces = (c: WireCase): Buffer[] => {
  const bytes = Buffer.from(c.data, "base64");
  const cuts = [...new Set(c.splits.filter((s) => s > 0 && s < bytes.length))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(bytes.subarray(at, cut));
    at = cut;
  }
  return out.filter((p) => p.length > 0);
};

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function play(connect: () => net.Socket, c: WireCase, holdMs: number): Played {
  const parts = pieces(c);
  // Clamped here, not in the generator, so a stored case replays with the same timing.
  const gap = parts.length > 1 ? Math.min(c.gapMs, Math.floor(MAX_WRITING_MS / (parts.length - 1))) : 0;
  const sockets: net.Socket[] = [];
  const writes: Promise<void>[] = [];
  const answers: Promise<Answer>[] = [];
  for (let i = 0; i < Math.max(1, c.connections); i++) {
    const s = connect();
    sockets.push(s);
    let connected = false;
    const received: Buffer[] = [];
    s.on("data", (d: Buffer) => received.push(d));
    const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
    s.on("error", () => undefined);
    const wrote = (async () => {
      // A full accept queue can leave a TCP connect waiting for SYN retries: give up after a while.
      await Promise.race([new Promise((r) => s.once("connect", r)), closed, delay(CONNECT_TIMEOUT_MS)]);
      connected = !s.destroyed && !s.connecting;
      if (!connected) s.destroy();
      for (let k = 0; k < parts.length && !s.destroyed; k++) {
        if (k > 0 && gap > 0) await Promise.race([delay(gap), closed]);
        if (!s.destroyed) s.write(parts[k]!);
      }
      if (c.ending === "end") s.end();
      else if (c.ending === "destroy") s.destroy();
    })();
    writes.push(wrote);
    answers.push(wrote.then(() => Promise.race([closed, delay(holdMs)])).then(() => ({ connected, data: Buffer.concat(received) })));
  }
  return {
    written: Promise.all(writes).then(() => undefined),
    answers: Promise.all(answers),
    release: () => {
      for (const s of sockets) s.destroy();
    },
  };
}
