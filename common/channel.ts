import net from "node:net";

/** A message larger than this is a broken peer, not a message: the channel says so and closes. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface ChannelEvents {
  /** One parsed JSON value; the receiver checks its shape. */
  message(value: unknown): void;
  /** Bytes that are not a JSON line, or a line over MAX_MESSAGE_BYTES; the channel is closed after this. */
  invalid(reason: string, preview: string): void;
  /** The peer has gone (or close() was called); every message it sent has been delivered. */
  close(): void;
}

/**
 * The supervisor-worker channel: JSON lines on a socketpair end. It replaces
 * Node's IPC channel, whose parser throws on a line that is not JSON from
 * inside its read callback: any worker writing a stray byte to its fd 3 would
 * crash the supervisor, and every listening socket with it. Here a bad line
 * is reported to the receiver, which decides what a broken peer deserves.
 */
export class Channel {
  private readonly socket: net.Socket;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private open = true;

  constructor(fd: number, private readonly events: ChannelEvents) {
    this.socket = new net.Socket({ fd, readable: true, writable: true });
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => this.closed());
  }

  get connected(): boolean {
    return this.open;
  }

  /** Queues `msg`; `written` runs once it is handed to the kernel (or could not be). False if the channel is closed. */
  send(msg: unknown, written?: () => void): boolean {
    if (!this.open) {
      written?.();
      return false;
    }
    this.socket.write(JSON.stringify(msg) + "\n", () => written?.());
    return true;
  }

  /** Writes bytes as they are, framing or not: only for fault injection (a broken peer). */
  writeRaw(bytes: Buffer): void {
    if (this.open) this.socket.write(bytes);
  }

  /** Sends what is queued, then closes. */
  close(): void {
    this.socket.end();
  }

  /** Closes at once, dropping what is queued either way, and reports nothing more. */
  destroy(): void {
    this.open = false;
    this.pending = [];
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0 && this.open; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      const line = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.pending = [];
      this.pendingBytes = 0;
      this.deliver(line);
    }
    if (!this.open || start === chunk.length) return;
    const rest = chunk.subarray(start);
    this.pendingBytes += rest.length;
    if (this.pendingBytes > MAX_MESSAGE_BYTES) return this.reject(`a message over ${MAX_MESSAGE_BYTES} bytes`, rest);
    this.pending.push(rest);
  }

  private deliver(line: Buffer): void {
    let value: unknown;
    try {
      value = JSON.parse(line.toString("utf8"));
    } catch {
      return this.reject("a line that is not JSON", line);
    }
    this.events.message(value);
  }

  private reject(reason: string, bytes: Buffer): void {
    this.events.invalid(reason, JSON.stringify(bytes.subarray(0, 120).toString("latin1")));
    this.socket.destroy();
    this.closed();
  }

  private closed(): void {
    if (!this.open) return;
    this.open = false;
    this.pending = [];
    this.events.close();
  }
}
