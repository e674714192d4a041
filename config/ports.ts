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

/** Every port covered by the ranges, sorted ascending, each once. */
export function expandPorts(ranges: readonly PortRange[]): number[] {
  // A bitmap keeps "1-65535" plus overlapping ranges linear and allocation-light.
  const seen = new Uint8Array(PORT_MAX + 1);
  for (const r of ranges) seen.fill(1, r.start, r.end + 1);
  const ports: number[] = [];
  for (let p = PORT_MIN; p <= PORT_MAX; p++) if (seen[p] === 1) ports.push(p);
  return ports;
}
