import type { Readable, Writable } from "node:stream";
import { isRegularFile, openAccessLogFile, type AccessLogWriteError } from "./access-log-file.js";
import type { Logger } from "../../common/log.js";
import { SwitchyardError } from "../../common/errors.js";

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
 * After a write to a regular file fails (disk full, I/O error), the file is
 * opened again on the first line this long after, doubling while it keeps
 * failing: room made on the disk brings the lines back without a SIGUSR1.
 */
export const ACCESS_LOG_RETRY_FIRST_MS = 1000;
const ACCESS_LOG_RETRY_MAX_MS = 60_000;

/** Newlines in `text`, from `from` on. */
function countLines(text: string | Buffer, from = 0): number {
  let n = 0;
  for (let i = text.indexOf("\n", from); i >= 0; i = text.indexOf("\n", i + 1)) n++;
  return n;
}

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
  /** After a write error on a regular file: when to open it again, and the wait after that. */
  private retryAt: number | undefined;
  private retryDelayMs = ACCESS_LOG_RETRY_FIRST_MS;
  /** Opened again after an error: the streak of drops ends at its first write that lands, not at the first one tried. */
  private unproven = false;

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
    // After an error the stream is destroyed and lines are dropped, counted (the lost
    // ones by their writes' callbacks). A FIFO whose reader went away (EPIPE) waits
    // for a SIGUSR1 to reach the next reader; a regular file is tried again.
    stream.on("error", (err) => {
      this.log.error({ event: "access_log_error", file: this.destination, code: (err as NodeJS.ErrnoException).code, err });
      if (stream === this.file && isRegularFile(this.destination)) this.scheduleRetry();
    });
    return stream;
  }

  private scheduleRetry(): void {
    this.retryAt = Date.now() + this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, ACCESS_LOG_RETRY_MAX_MS);
  }

  private retry(): void {
    this.retryAt = undefined;
    try {
      this.file = this.openFile();
    } catch (err) {
      this.log.error({ event: "access_log_reopen_failed", file: this.destination, code: (err as NodeJS.ErrnoException).code, err });
      this.scheduleRetry();
      return;
    }
    this.unproven = true;
    this.log.info({ event: "access_log_reopened", file: this.destination, reason: "retry after error" });
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
    if (this.retryAt !== undefined && this.file?.destroyed && Date.now() >= this.retryAt) this.retry();
    const out = this.file ?? process.stdout;
    // Once dropping, wait for half the buffer to drain: no flapping at the edge.
    const limit = this.droppingSince === undefined ? ACCESS_LOG_MAX_PENDING_BYTES : ACCESS_LOG_MAX_PENDING_BYTES / 2;
    if (out.destroyed || out.writableLength > limit) return this.drop(countLines(lines), out.writableLength);
    if (this.droppingSince !== undefined && !this.unproven) this.resumed();
    out.write(lines, (err?: AccessLogWriteError | null) => {
      if (!err) {
        if (this.unproven && out === this.file) this.proven();
        return;
      }
      // The lines of a write that failed, and of those still queued behind it, are lost
      // too; of one cut short, the lines that landed whole are not.
      const landed = err.landedBytes ? countLines(Buffer.from(lines).subarray(0, err.landedBytes)) : 0;
      this.drop(countLines(lines) - landed, out.writableLength);
    });
  }

  private drop(lines: number, pendingBytes: number): void {
    this.droppedLines += lines;
    if (this.droppingSince === undefined) {
      this.droppingSince = this.droppedLines - lines;
      this.log.warn({ event: "access_log_dropping", file: this.destination, pending_bytes: pendingBytes });
    }
  }

  private resumed(): void {
    this.log.warn({ event: "access_log_resumed", file: this.destination, dropped_lines: this.droppedLines - (this.droppingSince ?? this.droppedLines) });
    this.droppingSince = undefined;
  }

  /** A file opened again after an error took a line: it works again. */
  private proven(): void {
    this.unproven = false;
    this.retryDelayMs = ACCESS_LOG_RETRY_FIRST_MS;
    if (this.droppingSince !== undefined) this.resumed();
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
    this.retryAt = undefined;
    this.unproven = old.destroyed;
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
