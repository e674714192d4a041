// What /proc says about a process: its fds, its sockets, its children.
import fs from "node:fs";

export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Socket inodes held by a process (from "socket:[INODE]" links). */
export function socketInodes(pid: number): Set<number> {
  const out = new Set<number>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = fs.readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
      if (m) out.add(Number(m[1]));
    } catch {
      // fd closed while we looked
    }
  }
  return out;
}

export function childPids(pid: number): number[] {
  try {
    return fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function uidOf(pid: number): number {
  const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/^Uid:\s+(\d+)/m);
  return Number(m?.[1]);
}

/** Inodes of listening TCP sockets on the port, from /proc/net/tcp{,6}. */
export function listeningInodes(port: number): Set<number> {
  const out = new Set<number>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const localPort = parseInt(f[1]!.split(":")[1]!, 16);
      if (localPort === port && f[3] === "0A") out.add(Number(f[9]));
    }
  }
  return out;
}
