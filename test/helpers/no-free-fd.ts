import fs from "node:fs";
import { execFileSync } from "node:child_process";

import { closeFd, dupFd } from "../../native/index.js";
import { isSyscallError } from "../../common/errors.js";
import { fdTable } from "./fd-table.js";

const RESTORE_ROOM = 64;

/**
 * Runs `fn` with RLIMIT_NOFILE lowered to just above what is open now and every free fd below it taken: a new fd fails
 * with EMFILE. The room above the highest open fd is what the filler gives back for restoring the limit, and the
 * spawnSync that restores it needs about ten fds (its own loop and three pipes); with a dense fd table a few were not
 * enough (CI). `leave`: that many fds given back once the table is full, for fn's own use.
 */
export async function withNoFreeFd<T>(fn: () => Promise<T>, opts: { leave?: number } = {}): Promise<T> {
  const [soft, hard] = execFileSync("prlimit", ["--pid", String(process.pid), "--nofile", "--raw", "--noheadings", "--output", "SOFT,HARD"], { encoding: "utf8" }).trim().split(/\s+/);
  const highest = Math.max(...fdTable(process.pid).keys());
  execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${highest + RESTORE_ROOM}:${hard}`]);
  const filler: number[] = [];
  const some = fs.openSync("/dev/null", "r");
  filler.push(some);
  try {
    for (;;) {
      try {
        filler.push(dupFd(some));
      } catch (e) {
        if (isSyscallError(e) && e.code === "EMFILE") break;
        throw e;
      }
    }
    for (let i = 0; i < (opts.leave ?? 0) && filler.length > 1; i++) closeFd(filler.pop()!);
    return await fn();
  } finally {
    filler.forEach(closeFd);
    execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${soft}:${hard}`]);
  }
}
