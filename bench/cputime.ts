// CPU time (user + system) of a party's processes from /proc, in milliseconds:
// what the live processes used, plus what their children that already exited
// used (a parent's cutime + cstime holds every child it reaped, and that
// child's own reaped children). A process that exits moves its time from its
// own entry to its parent's: the sum over a tree stays whole.
import { spawnSync } from "node:child_process";
import fs from "node:fs";

/** USER_HZ, the unit of /proc/PID/stat's times: 100 on the usual kernels, but getconf knows. */
const TICKS_PER_S = (() => {
  const n = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim());
  return n > 0 ? n : 100;
})();
const MS_PER_TICK = 1000 / TICKS_PER_S;

/** Fields of /proc/PID/stat from the state on (index 0 = field 3); undefined once the process is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/**
 * Nanoseconds on CPU of the process's live threads (the first field of each
 * thread's schedstat). Exact, where utime + stime are cut to 10 ms per reading,
 * which is most of what a HAProxy reload costs. The processes measured here keep
 * their threads for life (Node's and HAProxy's thread pools), so no time is
 * lost with a thread that exited; when the process exits, its parent's cutime
 * takes the whole of it.
 */
function liveThreadsNs(pid: number): number | undefined {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread just ended
    }
  }
  return ns;
}

/**
 * CPU of `pids` and of their reaped children, in ms; undefined when one of them
 * vanished while being read (its parent may have reaped it after its own time
 * was read: it would be counted nowhere). `pids` must list parents before their
 * children, as processTree() does: a child reaped after its parent was read is
 * then gone when its turn comes, and the caller reads again.
 */
export function cpuMs(pids: readonly number[]): number | undefined {
  let ms = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (!f) return undefined;
    // A zombie's other threads are gone with their schedstat: its utime + stime still hold them.
    const ownNs = f[0] === "Z" ? undefined : liveThreadsNs(pid);
    const own = ownNs !== undefined && ownNs > 0 ? ownNs / 1e6 : (Number(f[11]) + Number(f[12])) * MS_PER_TICK;
    ms += own + (Number(f[13]) + Number(f[14])) * MS_PER_TICK;
  }
  return ms;
}

/** cpuMs over a tree that `tree()` lists afresh each time, read again (bounded) until no process vanished meanwhile. */
export function treeCpu(tree: () => number[]): { ms: number; pids: number[] } {
  for (let i = 0; i < 20; i++) {
    const pids = tree();
    const ms = cpuMs(pids);
    if (ms !== undefined) return { ms, pids };
  }
  throw new Error("the process tree kept changing while its CPU time was read");
}
