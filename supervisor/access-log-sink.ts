import type { Readable, Writable } from "node:stream";
import { isRegularFile, openAccessLogFile } from "./access-log-file.js";
import type { Logger } from "../common/log.js";
import { SwitchyardError } from "../common/errors.js";

/** How long close() waits for the pipes of exited workers to be read to their end. */
const CLOSE_WAIT_MS = 2000;

/**
 * Lines waiting for a destination that does not keep up (a stuck disk, a FIFO
 * whose reader stalled) are held up to this many bytes; past it new lines are
 * dropped and counted, as a syslog socket would, rather than held without
 * bound in the supervisor's memory. A healthy file never gets near it.
 */
export const ACCESS_LOG_MAX_PENDING_BYTES = 1024 * 1024;

/**
 * Where the workers' access-log lines go: stdout, a file (reopened on
 * SIGUSR1, for logrotate), or nowhere. Workers write into pipes; only whole
 * lines are passed on, so lines of two workers never interleave.
 */
export class AccessLogSink {
  private file: Writable | undefined;
  /** Worker pipes not yet read to their end: a worker's exit event can come before its last lines. */
  private readonly open = new Set<Promise<void>>();
  /** Lines dropped since start, for /metrics. */
  droppedLines = 0;
  /** Lines dropped since the destination last kept up; undefined while it does. */
  private droppingSince: number | undefined;

  /** Throws ACCESS_LOG_FAILED when the file cannot be opened: better not to start than to drop every line. */
  constructor(private readonly destination: string, private readonly log: Logger) {
    if (destination === "-" || destination === "off") return;
    try {
      this.file = this.openFile();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new SwitchyardError("ACCESS_LOG_FAILED", `cannot open the access log ${destination}: ${code}`, { cause: err });
    }
  }

  get enabled(): boolean {
    return this.destination !== "off";
  }

  private openFile(): Writable {
    const stream = openAccessLogFile(this.destination);
    // After an error (a FIFO's reader went away: EPIPE) the stream is destroyed and lines are dropped, counted.
    stream.on("error", (err) => this.log.error({ event: "access_log_error", file: this.destination, err }));
    return stream;
  }

  attach(source: Readable): void {
    let rest = "";
    source.setEncoding("utf8");
    source.on("data", (chunk: string) => {
      const text = rest + chunk;
      const end = text.lastIndexOf("\n");
      if (end < 0) {
        rest = text;
        return;
      }
      rest = text.slice(end + 1);
      this.write(text.slice(0, end + 1));
    });
    source.on("error", () => undefined);
    const ended = new Promise<void>((resolve) => source.once("close", () => resolve()));
    this.open.add(ended);
    void ended.then(() => this.open.delete(ended));
  }

  private write(lines: string): void {
    if (this.destination === "off") return;
    const out = this.file ?? process.stdout;
    // Once dropping, wait for half the buffer to drain: no flapping at the edge.
    const limit = this.droppingSince === undefined ? ACCESS_LOG_MAX_PENDING_BYTES : ACCESS_LOG_MAX_PENDING_BYTES / 2;
    if (out.destroyed || out.writableLength > limit) {
      let n = 0;
      for (let i = lines.indexOf("\n"); i >= 0; i = lines.indexOf("\n", i + 1)) n++;
      this.droppedLines += n;
      if (this.droppingSince === undefined) {
        this.droppingSince = this.droppedLines - n;
        this.log.warn({ event: "access_log_dropping", file: this.destination, pending_bytes: out.writableLength });
      }
      return;
    }
    if (this.droppingSince !== undefined) {
      this.log.warn({ event: "access_log_resumed", file: this.destination, dropped_lines: this.droppedLines - this.droppingSince });
      this.droppingSince = undefined;
    }
    out.write(lines);
  }

  reopen(): void {
    if (!this.file) return;
    const old = this.file;
    if (!isRegularFile(this.destination) && !old.destroyed) {
      // A FIFO is not rotated: reopened only once its reader has gone (EPIPE), to reach the next one.
      this.log.info({ event: "access_log_reopen_skipped", file: this.destination, reason: "not a regular file" });
      return;
    }
    try {
      this.file = this.openFile();
    } catch (err) {
      // Keep writing where we were (a renamed file still takes lines) rather than nowhere.
      this.log.error({ event: "access_log_reopen_failed", file: this.destination, code: (err as NodeJS.ErrnoException).code, err });
      return;
    }
    old.end();
    this.log.info({ event: "access_log_reopened", file: this.destination });
  }

  /** Call once every worker has exited: writes what their pipes still hold, then closes the file. */
  async close(): Promise<void> {
    await withinMs(Promise.all(this.open), CLOSE_WAIT_MS);
    const f = this.file;
    if (!f) return;
    // A destination that stopped reading would hold the stop for ever.
    const flushed = await withinMs(new Promise<void>((resolve) => f.end(() => resolve())), CLOSE_WAIT_MS);
    if (!flushed) {
      this.log.warn({ event: "access_log_unflushed", file: this.destination, pending_bytes: f.writableLength });
      f.destroy();
    }
  }
}

/** Whether `promise` settled within `ms`. */
async function withinMs(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return settled;
}
