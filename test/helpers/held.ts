// A client connection kept open across reloads: several echo round trips on
// one socket, and a record of when (and how) the other side closed it.
import net from "node:net";

export interface HeldConnection {
  socket: net.Socket;
  /** Writes `payload`, resolves with the next `payload.length` bytes read. */
  roundTrip(payload: Buffer, timeoutMs?: number): Promise<Buffer>;
  /** Half-closes, resolves with every byte read until the peer's FIN. */
  finish(payload: Buffer, timeoutMs?: number): Promise<Buffer>;
  /** Resolves when the peer ends the connection (FIN), it errors, or it closes: when, and how. */
  peerClosed: Promise<PeerClose>;
  /** The same, once it happened; undefined while the connection is open. */
  readonly closedBy: PeerClose | undefined;
}

export interface PeerClose {
  at: number;
  how: "end" | "error" | "close";
  error?: string;
}

export function hold(port: number, host = "127.0.0.1"): Promise<HeldConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, allowHalfOpen: true });
    let buffered = Buffer.alloc(0);
    let sawEnd = false;
    let error: string | undefined;
    let wake: (() => void) | undefined;
    socket.on("data", (c: Buffer) => {
      buffered = Buffer.concat([buffered, c]);
      wake?.();
    });
    socket.on("end", () => {
      sawEnd = true;
      wake?.();
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
      wake?.();
    });
    let closedBy: PeerClose | undefined;
    const peerClosed = new Promise<PeerClose>((r) => {
      const seen = (how: PeerClose["how"]) => (): void => {
        if (closedBy) return;
        closedBy = { at: Date.now(), how, ...(error !== undefined ? { error } : {}) };
        r(closedBy);
      };
      socket.on("end", seen("end"));
      socket.on("error", seen("error"));
      socket.on("close", seen("close"));
    });

    /** Waits until `done()` holds, the stream ends, or the deadline passes. */
    const readUntil = (done: () => boolean, timeoutMs: number, what: string): Promise<void> =>
      new Promise((res, rej) => {
        const timer = setTimeout(() => finish(new Error(`${what}: timed out after ${timeoutMs} ms with ${buffered.length} bytes`)), timeoutMs);
        const finish = (err?: Error): void => {
          clearTimeout(timer);
          wake = undefined;
          if (err) rej(err);
          else res();
        };
        wake = () => {
          if (done()) finish();
          else if (error !== undefined) finish(new Error(`${what}: ${error}`));
          else if (sawEnd) finish(new Error(`${what}: closed by the peer after ${buffered.length} bytes`));
        };
        wake();
      });

    const held: HeldConnection = {
      socket,
      peerClosed,
      get closedBy() {
        return closedBy;
      },
      roundTrip: async (payload, timeoutMs = 10_000) => {
        socket.write(payload);
        await readUntil(() => buffered.length >= payload.length, timeoutMs, "round trip");
        const reply = buffered.subarray(0, payload.length);
        buffered = buffered.subarray(payload.length);
        return reply;
      },
      finish: async (payload, timeoutMs = 10_000) => {
        socket.end(payload);
        await readUntil(() => sawEnd, timeoutMs, "finish");
        const reply = buffered;
        buffered = Buffer.alloc(0);
        return reply;
      },
    };
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(held);
    });
    socket.once("error", reject);
  });
}
