import fs from "node:fs";
import net from "node:net";
import { Writable } from "node:stream";

/** A failed write to the access log's file, saying how many bytes of its chunk landed before the error. */
export type AccessLogWriteError = NodeJS.ErrnoException & { landedBytes?: number };

/**
 * Appends to a regular file, one chunk per write(2) loop and never several
 * chunks in one writev(2) (as fs.WriteStream does): when the disk fills up,
 * the error then says exactly how much of which chunk landed, so the lines
 * lost are counted exactly rather than a whole batch's.
 */
class AppendFile extends Writable {
  constructor(private readonly fd: number) {
    super({ decodeStrings: true });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    const from = (offset: number): void => {
      fs.write(this.fd, chunk, offset, chunk.length - offset, null, (err, n) => {
        if (err) return done(Object.assign(err, { landedBytes: offset }));
        if (offset + n < chunk.length) return from(offset + n);
        done();
      });
    };
    from(0);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    fs.close(this.fd, () => done(err));
  }
}

/**
 * A file left with a torn last line (a write cut short by a full disk or a
 * crash) gets the line ended, so the next line starts on a line of its own.
 */
function endTornLine(fd: number): void {
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return;
    const last = Buffer.alloc(1);
    fs.readSync(fd, last, 0, 1, size - 1);
    if (last[0] !== 0x0a) fs.writeSync(fd, "\n");
  } catch {
    // Still full, or not readable: the next line may join the torn one.
  }
}

/**
 * Opens the access log's file, synchronously so that a path that cannot be
 * opened is known at once. A FIFO (a log shipper reading it) is written through
 * a non-blocking pipe handle, as stdout is: through fs, a write to a FIFO whose
 * reader stalled would block one of libuv's threads for good, and with it the
 * process's exit, since libuv joins those threads then.
 */
export function openAccessLogFile(file: string): Writable {
  let fifo = false;
  try {
    fifo = fs.statSync(file).isFIFO();
  } catch {
    // Not there yet: created below as a regular file.
  }
  if (fifo) {
    // O_NONBLOCK: ENXIO at once when nobody has the FIFO open for reading, rather than waiting for a reader.
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    return new net.Socket({ fd, readable: false, writable: true });
  }
  let fd: number;
  try {
    // Readable too, to look at the last byte.
    fd = fs.openSync(file, "a+", 0o640);
    endTornLine(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EACCES") throw err;
    // Writable only, for us: the check is skipped.
    fd = fs.openSync(file, "a", 0o640);
  }
  return new AppendFile(fd);
}

/** Whether `file` is a regular file, the only kind logrotate rotates; a missing one counts (reopening creates it). */
export function isRegularFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return true;
  }
}
