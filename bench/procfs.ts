// What /proc says about the processes a party runs: their tree and memory.
import fs from "node:fs";

function parentOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** `pid` and every live process below it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = parentOf(Number(name));
    if (ppid === undefined) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  if (isAlive(pid)) walk(pid);
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return state.slice(state.lastIndexOf(")") + 2, state.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** A size field of /proc/PID/status in bytes, 0 for a process that is gone. */
function statusBytes(pid: number, field: "VmRSS" | "RssAnon"): number {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident set size in bytes (VmRSS). */
export const rssBytes = (pid: number): number => statusBytes(pid, "VmRSS");

export function totalRss(pids: readonly number[]): number {
  return pids.reduce((a, p) => a + rssBytes(p), 0);
}

/**
 * Resident anonymous memory (RssAnon: heaps, stacks), without the mapped
 * binary and libraries that VmRSS counts again in every process sharing them.
 */
export function totalAnonRss(pids: readonly number[]): number {
  return pids.reduce((a, p) => a + statusBytes(p, "RssAnon"), 0);
}

/**
 * Every process other than this one in this process's network namespace. The
 * benchmark's namespace is its own (netns.ts), so all of them were started by
 * the run: a daemon's child that outlived its parent shows up here too.
 */
export function othersInMyNetns(): number[] {
  const mine = fs.readlinkSync("/proc/self/ns/net");
  const out: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (fs.readlinkSync(`/proc/${name}/ns/net`) === mine && isAlive(Number(name))) out.push(Number(name));
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}
