import fs from "node:fs";
import path from "node:path";
import { lockExclusive } from "../native/index.js";
import { SwitchyardError } from "../common/errors.js";

const netns = (): number => fs.statSync("/proc/self/ns/net").ino;

/**
 * Claims the runtime dir for this supervisor, in this network namespace, for
 * as long as it lives. A second `switchyard run` on the same dir in the same
 * namespace (started twice by mistake) would replace the first one's control
 * socket, leaving it unreachable by `ctl`; it could not serve the same ports
 * anyway. Supervisors of other namespaces may share the dir (their workers
 * keep no file there), but the last one started owns control.sock. The flock dies with the process: a crash leaves nothing stale.
 */
export function claimRuntimeDir(dir: string): number {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, `supervisor-netns-${netns()}.lock`);
  // Opened close-on-exec (libuv always is): workers never hold the lock.
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  try {
    lockExclusive(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EWOULDBLOCK" && code !== "EAGAIN") {
      fs.closeSync(fd);
      throw err;
    }
    const holder = fs.readFileSync(file, "utf8").trim() || "unknown";
    fs.closeSync(fd);
    throw new SwitchyardError("RUNTIME_DIR_IN_USE", `runtime dir ${dir} is in use by another switchyard supervisor (pid ${holder}) in this network namespace; give this one its own --runtime-dir`);
  }
  return holdLock(fd);
}

/**
 * Takes over the lock a previous supervisor held (an upgrade hands over the
 * locked file's fd: a flock belongs to the open file, so it is already ours).
 */
export function adoptRuntimeDirLock(fd: number): number {
  return holdLock(fd);
}

function holdLock(fd: number): number {
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, `${process.pid}\n`, 0);
  // fd stays open on purpose: closing it would release the lock.
  return fd;
}
