import fs from "node:fs";
import path from "node:path";

/** sun_path holds 108 bytes with its terminating NUL. */
export const MAX_UNIX_PATH_BYTES = 107;

export interface UnixSocketPath {
  /** The path to give bind() or connect(): the real one, or one through /proc/self/fd. */
  path: string;
  /** The socket file's real path (for stat, chmod, rm, and messages). */
  file: string;
  /** Closes the directory fd a long path goes through; call once bind/connect has happened. */
  release(): void;
}

/**
 * Where to bind or connect the unix socket `name` in `dir`, whatever the length
 * of `dir`. Node cuts a path longer than sun_path short without a word, so a
 * long one would bind a different file (two sockets then share a name); here a
 * long path goes through an open fd of the directory instead,
 * /proc/self/fd/N/name, which the kernel resolves like the real path.
 */
export function unixSocketPath(dir: string, name: string): UnixSocketPath {
  const file = path.join(dir, name);
  if (Buffer.byteLength(file) <= MAX_UNIX_PATH_BYTES) return { path: file, file, release: () => undefined };
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  let open = true;
  return {
    path: `/proc/self/fd/${fd}/${name}`,
    file,
    release: () => {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}
