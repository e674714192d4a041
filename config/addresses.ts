// Destination prefixes an app answers on ("Addresses"). They are compared to decide
// whether two apps may share a port, so they are parsed into numbers rather than
// compared as text: "127.0.0.1" and "127.0.0.1/32", or "fd00::" and "FD00:0::", are equal.

import { isIPv6 } from "node:net";
import { fail, ok, type Parsed } from "./parsed.js";

export interface Prefix {
  family: 4 | 6;
  /** Network address with host bits zeroed. */
  network: bigint;
  length: number;
  /** Normalised CIDR text, e.g. "10.0.0.0/8", "fd00::/64". */
  cidr: string;
}

export const ALL_ADDRESSES: readonly string[] = ["0.0.0.0/0", "::/0"];

const WIDTH = { 4: 32, 6: 128 } as const;
const EXAMPLES = '(e.g. "127.0.0.1", "10.0.0.0/8", "::1", "fd00::/64")';

/**
 * Strict dotted-quad only: leading zeros are rejected because some resolvers read
 * them as octal, and "1.2.3" style shorthand is rejected as a likely typo.
 */
export function parseIPv4(s: string): bigint | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    n = (n << 8n) | BigInt(p);
  }
  return n;
}

/** Zone ids ("fe80::1%eth0") are refused: a prefix cannot carry one. */
export function parseIPv6(s: string): bigint | undefined {
  if (s.includes("%") || !isIPv6(s)) return undefined;
  const groups: string[] = [];
  const [head = "", tail] = s.split("::");
  const expand = (part: string): string[] | undefined => {
    if (part === "") return [];
    const out: string[] = [];
    for (const g of part.split(":")) {
      if (g.includes(".")) {
        const v4 = parseIPv4(g);
        if (v4 === undefined) return undefined;
        out.push((v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16));
      } else out.push(g);
    }
    return out;
  };
  const h = expand(head);
  const t = tail === undefined ? [] : expand(tail);
  if (h === undefined || t === undefined) return undefined;
  groups.push(...h);
  if (tail !== undefined) for (let i = h.length + t.length; i < 8; i++) groups.push("0");
  groups.push(...t);
  if (groups.length !== 8) return undefined;
  return groups.reduce((n, g) => (n << 16n) | BigInt(`0x${g}`), 0n);
}

export function formatIPv4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => ((n >> s) & 0xffn).toString()).join(".");
}

/** RFC 5952 text: lower case, longest run of two or more zero groups as "::". */
export function formatIPv6(n: bigint): string {
  if (n >> 32n === 0xffffn) return `::ffff:${formatIPv4(n & 0xffffffffn)}`;
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

export function parsePrefix(text: string): Parsed<Prefix> {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const lenText = slash < 0 ? undefined : text.slice(slash + 1);
  if (addr.startsWith("[")) return fail(`${JSON.stringify(text)}: write IPv6 addresses without brackets here ${EXAMPLES}`);
  const v4 = parseIPv4(addr);
  const v6 = v4 === undefined ? parseIPv6(addr) : undefined;
  const family = v4 !== undefined ? 4 : v6 !== undefined ? 6 : undefined;
  if (family === undefined) {
    if (addr.includes("%")) return fail(`${JSON.stringify(text)}: zone ids ("%eth0") are not allowed`);
    return fail(`${JSON.stringify(text)} is not an IPv4 or IPv6 address or CIDR prefix ${EXAMPLES}`);
  }
  const width = WIDTH[family];
  let length: number = width;
  if (lenText !== undefined) {
    if (!/^(0|[1-9]\d{0,2})$/.test(lenText) || Number(lenText) > width) {
      return fail(`${JSON.stringify(text)}: prefix length must be 0-${width} for IPv${family}`);
    }
    length = Number(lenText);
  }
  const hostBits = BigInt(width - length);
  const network = (((v4 ?? v6) as bigint) >> hostBits) << hostBits;
  const cidr = `${family === 4 ? formatIPv4(network) : formatIPv6(network)}/${length}`;
  return ok({ family, network, length, cidr });
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const shift = BigInt(WIDTH[a.family] - Math.min(a.length, b.length));
  return a.network >> shift === b.network >> shift;
}

/** A prefix of the Plan, which the schema already validated and normalised. */
export function planPrefix(cidr: string): Prefix {
  const parsed = parsePrefix(cidr);
  if (!parsed.ok) throw new Error(`invalid prefix in plan: ${parsed.error}`);
  return parsed.value;
}

/** Whether a socket's address is inside the prefix; IPv4-mapped IPv6 counts as IPv4. */
export function prefixContains(p: Prefix, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const v4 = parseIPv4(mapped ? mapped[1]! : address);
  const family = v4 !== undefined ? 4 : 6;
  const n = v4 ?? parseIPv6(address);
  if (n === undefined || family !== p.family) return false;
  const shift = BigInt(WIDTH[family] - p.length);
  return n >> shift === p.network >> shift;
}
