import { isIPv4, isIPv6 } from "node:net";

export interface Cidr {
  family: 4 | 6;
  /** 4 or 16 bytes, host bits zero. */
  bytes: Uint8Array;
  prefix: number;
}

function ipv4Bytes(a: string): Uint8Array {
  return Uint8Array.from(a.split(".").map(Number));
}

function ipv6Bytes(a: string): Uint8Array {
  const tail4 = a.match(/(\d+\.\d+\.\d+\.\d+)$/);
  let text = a;
  let suffix: number[] = [];
  if (tail4) {
    suffix = Array.from(ipv4Bytes(tail4[1]!));
    text = a.slice(0, -tail4[1]!.length) + "0:0";
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const groups = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const h = groups(head);
  const t = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  if (suffix.length === 4) out.set(suffix, 12);
  return out;
}

/** Bytes of an IP address; IPv4-mapped IPv6 (::ffff:a.b.c.d) is returned as IPv4. */
export function addressBytes(address: string): { family: 4 | 6; bytes: Uint8Array } | undefined {
  if (isIPv4(address)) return { family: 4, bytes: ipv4Bytes(address) };
  const bare = address.replace(/%.*$/, "");
  if (!isIPv6(bare)) return undefined;
  const mapped = bare.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i);
  if (mapped) return { family: 4, bytes: ipv4Bytes(mapped[1]!) };
  return { family: 6, bytes: ipv6Bytes(bare) };
}

/** Parses "a.b.c.d/n", "x::/n" or a bare address (a host prefix). */
export function parseCidr(text: string): Cidr | undefined {
  const [addr, len, extra] = text.split("/");
  if (addr === undefined || extra !== undefined) return undefined;
  const parsed = addressBytes(addr);
  if (!parsed || (parsed.family === 4 && !isIPv4(addr))) return undefined;
  const max = parsed.family === 4 ? 32 : 128;
  const prefix = len === undefined ? max : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  const bytes = parsed.bytes.slice();
  for (let bit = prefix; bit < max; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family: parsed.family, bytes, prefix };
}

function samePrefixBits(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  for (let bit = 0; bit < bits; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((a[bit >> 3]! & mask) !== (b[bit >> 3]! & mask)) return false;
  }
  return true;
}

export function cidrContains(cidr: Cidr, address: string): boolean {
  const a = addressBytes(address);
  return a !== undefined && a.family === cidr.family && samePrefixBits(cidr.bytes, a.bytes, cidr.prefix);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && samePrefixBits(a.bytes, b.bytes, Math.min(a.prefix, b.prefix));
}

export function formatCidr(c: Cidr): string {
  if (c.family === 4) return `${Array.from(c.bytes).join(".")}/${c.prefix}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((c.bytes[i]! << 8) | c.bytes[i + 1]!).toString(16));
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  const text = best < 0 ? groups.join(":") : `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
  return `${text}/${c.prefix}`;
}
