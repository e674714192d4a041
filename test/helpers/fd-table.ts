// A process's fd table from /proc, and what changed between two readings:
// the diagnosis printed when an fd-leak assertion fails.
import fs from "node:fs";

/** fd number → link target ("socket:[123]", "pipe:[45]", "/dev/null", "anon_inode:[eventpoll]" …). */
export function fdTable(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.set(Number(fd), fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed while we looked
    }
  }
  return out;
}

/** Link targets with their kind collapsed ("socket", "pipe", …), counted: stable across fd reuse. */
export function fdKinds(table: Map<number, string>): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const target of table.values()) {
    const kind = target.replace(/:\[\d+\]$/, "");
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

/** Human-readable difference between two tables, for an assertion message. */
export function describeFdChange(before: Map<number, string>, after: Map<number, string>): string {
  const lines: string[] = [];
  for (const [fd, target] of after) if (before.get(fd) !== target) lines.push(`+ fd ${fd} -> ${target}`);
  for (const [fd, target] of before) if (after.get(fd) !== target) lines.push(`- fd ${fd} -> ${target}`);
  return [
    `before: ${before.size} fds ${JSON.stringify(fdKinds(before))}`,
    `after:  ${after.size} fds ${JSON.stringify(fdKinds(after))}`,
    ...lines,
  ].join("\n");
}
