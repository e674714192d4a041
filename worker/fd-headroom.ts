import fs from "node:fs";

// How many fds a worker may still open: the Acceptor refuses a connection while
// it can still say so, rather than let accept(2) fail (see FDS_PER_ACCEPT there).

/** The soft RLIMIT_NOFILE (Node raises it to the hard limit at start-up); undefined if unknown or unlimited. */
export function fdLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function fdsOpen(): number {
  try {
    return fs.readdirSync("/proc/self/fd").length;
  } catch {
    return 0;
  }
}

/** EMFILE or ENFILE when fewer than `n` fds can be opened now; undefined otherwise (or when it cannot tell). */
export function lackingFds(n: number): string | undefined {
  const fds: number[] = [];
  try {
    for (let i = 0; i < n; i++) fds.push(fs.openSync("/dev/null", "r"));
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "EMFILE" || code === "ENFILE" ? code : undefined;
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}
