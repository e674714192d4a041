// One entry of an app's "Ports": an integer, or an inclusive "start-end" range.

import { fail, ok, type Parsed } from "./parsed.js";

export const PORT_MIN = 1;
export const PORT_MAX = 65535;

export const PORT_ENTRY_HINT = 'must be an integer port or a "start-end" range';

export interface PortRange {
  start: number;
  end: number;
}

const RANGE = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/;

export function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= PORT_MIN && n <= PORT_MAX;
}

export function parsePortEntry(entry: number | string): Parsed<PortRange> {
  if (typeof entry === "number") {
    if (!Number.isInteger(entry)) return fail(PORT_ENTRY_HINT);
    if (!isPort(entry)) return fail(`must be ${PORT_MIN}-${PORT_MAX}`);
    return ok({ start: entry, end: entry });
  }
  const m = RANGE.exec(entry);
  if (m === null) {
    // A quoted single port is the likeliest slip; say how to write it.
    if (/^\s*\d+\s*$/.test(entry)) return fail(`${PORT_ENTRY_HINT}: write ${entry.trim()} without quotes`);
    return fail(`${PORT_ENTRY_HINT}, not ${JSON.stringify(entry)}`);
  }
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!isPort(start) || !isPort(end)) return fail(`range ${JSON.stringify(entry)}: both ends must be ${PORT_MIN}-${PORT_MAX}`);
  if (start > end) return fail(`range ${JSON.stringify(entry)}: start is greater than end`);
  return ok({ start, end });
}

/** The ranges as sorted, disjoint, non-adjacent ranges: what every later step walks. */
export function mergeRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const merged: PortRange[] = [];
  for (const r of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else merged.push({ start: r.start, end: r.end });
  }
  return merged;
}

/** How many ports the ranges cover, each once. */
export function portCount(ranges: readonly PortRange[]): number {
  return mergeRanges(ranges).reduce((n, r) => n + r.end - r.start + 1, 0);
}

/** Every port covered by the ranges, sorted ascending, each once. */
export function expandPorts(ranges: readonly PortRange[]): number[] {
  // Merging first: 10,000 copies of "1-65535" cost a sort, not 10,000 walks, and
  // a one-port app does not walk the whole port space.
  const ports: number[] = [];
  for (const r of mergeRanges(ranges)) for (let p = r.start; p <= r.end; p++) ports.push(p);
  return ports;
}
