import fs from "node:fs";
import net from "node:net";
import type { Writable } from "node:stream";

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
  const fd = fs.openSync(file, "a", 0o640);
  return fs.createWriteStream(file, { fd });
}

/** Whether `file` is a regular file, the only kind logrotate rotates; a missing one counts (reopening creates it). */
export function isRegularFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return true;
  }
}
