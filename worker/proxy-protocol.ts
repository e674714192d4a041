// The PROXY protocol (HAProxy's spec, versions 1 and 2): the header a proxy
// writes first on a connection to say whom it carries, built for targets and
// parsed from a balancer in front. TCP over IPv4 and IPv6 only; the rest is
// read as "unknown" (the connection's own addresses then stand).
import net from "node:net";

export interface Endpoint {
  address: string;
  port: number;
}

export type ProxyHeader =
  /** PROXY: the original client and the address it dialled. */
  | { command: "proxy"; source: Endpoint; destination: Endpoint }
  /** LOCAL (a balancer's own health check) or an unknown family: no addresses to take. */
  | { command: "local" | "unknown" };

/** A v1 line is at most 107 bytes with its CRLF. */
const V1_MAX = 107;
/** What a v2 header may hold here, TLVs included; beyond it the client is closed. */
export const PROXY_HEADER_MAX_BYTES = 4096;

const V1_PREFIX = Buffer.from("PROXY ");
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

export type ParseResult =
  | { state: "incomplete" }
  | { state: "invalid"; reason: string }
  | { state: "done"; length: number; header: ProxyHeader };

/** Whether `buf` (shorter than `whole`) could still be the start of it. */
function startsLike(buf: Buffer, whole: Buffer): boolean {
  const n = Math.min(buf.length, whole.length);
  return buf.subarray(0, n).equals(whole.subarray(0, n));
}

/** Parses the header at the start of `buf`, which holds what has arrived so far. */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (startsLike(buf, V2_SIGNATURE)) return buf.length < 16 ? { state: "incomplete" } : parseV2(buf);
  if (startsLike(buf, V1_PREFIX)) return parseV1(buf);
  return { state: "invalid", reason: "not a PROXY protocol header" };
}

function parseV1(buf: Buffer): ParseResult {
  const end = buf.indexOf("\r\n");
  if (end < 0) return buf.length >= V1_MAX ? { state: "invalid", reason: `a v1 header longer than ${V1_MAX} bytes` } : { state: "incomplete" };
  if (end + 2 > V1_MAX) return { state: "invalid", reason: `a v1 header longer than ${V1_MAX} bytes` };
  const fields = buf.toString("latin1", 0, end).split(" ");
  const length = end + 2;
  if (fields[1] === "UNKNOWN") return { state: "done", length, header: { command: "unknown" } };
  if (fields.length !== 6 || (fields[1] !== "TCP4" && fields[1] !== "TCP6")) return { state: "invalid", reason: "a malformed v1 header" };
  const family = fields[1] === "TCP4" ? 4 : 6;
  const [src, dst, sport, dport] = [fields[2]!, fields[3]!, fields[4]!, fields[5]!];
  if (net.isIP(src) !== family || net.isIP(dst) !== family) return { state: "invalid", reason: "a v1 header with addresses not of its family" };
  const port = (text: string): number | undefined => (/^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined);
  const [sp, dp] = [port(sport), port(dport)];
  if (sp === undefined || dp === undefined) return { state: "invalid", reason: "a v1 header with a port out of range" };
  return { state: "done", length, header: { command: "proxy", source: { address: src, port: sp }, destination: { address: dst, port: dp } } };
}

function parseV2(buf: Buffer): ParseResult {
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { state: "invalid", reason: `a v2 header of version ${verCmd >> 4}` };
  const command = verCmd & 0x0f;
  if (command > 1) return { state: "invalid", reason: `a v2 header with command ${command}` };
  const length = 16 + buf.readUInt16BE(14);
  if (length > PROXY_HEADER_MAX_BYTES) return { state: "invalid", reason: `a v2 header of ${length} bytes, over ${PROXY_HEADER_MAX_BYTES}` };
  if (buf.length < length) return { state: "incomplete" };
  if (command === 0) return { state: "done", length, header: { command: "local" } };
  const family = buf[13]!;
  // 0x11 TCP over IPv4, 0x21 TCP over IPv6; UDP, unix sockets and AF_UNSPEC carry nothing we use.
  if (family === 0x11) {
    if (length < 16 + 12) return { state: "invalid", reason: "a v2 IPv4 header too short for its addresses" };
    return { state: "done", length, header: { command: "proxy", source: { address: ipv4(buf, 16), port: buf.readUInt16BE(24) }, destination: { address: ipv4(buf, 20), port: buf.readUInt16BE(26) } } };
  }
  if (family === 0x21) {
    if (length < 16 + 36) return { state: "invalid", reason: "a v2 IPv6 header too short for its addresses" };
    return { state: "done", length, header: { command: "proxy", source: { address: ipv6(buf, 16), port: buf.readUInt16BE(48) }, destination: { address: ipv6(buf, 32), port: buf.readUInt16BE(50) } } };
  }
  return { state: "done", length, header: { command: "unknown" } };
}

function ipv4(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

function ipv6(buf: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(at + i).toString(16));
  // SocketAddress gives the RFC 5952 short form ("::1"), as Node reports addresses.
  return new net.SocketAddress({ address: groups.join(":"), family: "ipv6" }).address;
}

/** Both ends in one family (IPv4-mapped IPv6 taken as IPv4), or undefined: the header then says UNKNOWN. */
function sameFamily(source: Endpoint, destination: Endpoint): { family: 4 | 6; source: Endpoint; destination: Endpoint } | undefined {
  const unmap = (e: Endpoint): Endpoint => (e.address.startsWith("::ffff:") && net.isIPv4(e.address.slice(7)) ? { ...e, address: e.address.slice(7) } : e);
  const [s, d] = [unmap(source), unmap(destination)];
  const [fs, fd] = [net.isIP(s.address), net.isIP(d.address)];
  if (fs === 0 || fs !== fd) return undefined;
  return { family: fs as 4 | 6, source: s, destination: d };
}

/** "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", or "PROXY UNKNOWN\r\n" when the ends are of two families. */
export function buildV1(source: Endpoint, destination: Endpoint): Buffer {
  const e = sameFamily(source, destination);
  if (!e) return Buffer.from("PROXY UNKNOWN\r\n", "latin1");
  return Buffer.from(`PROXY TCP${e.family} ${e.source.address} ${e.destination.address} ${e.source.port} ${e.destination.port}\r\n`, "latin1");
}

/** The binary form: signature, PROXY command, TCP over the ends' family; AF_UNSPEC when they differ. */
export function buildV2(source: Endpoint, destination: Endpoint): Buffer {
  const e = sameFamily(source, destination);
  const addrLength = e === undefined ? 0 : e.family === 4 ? 12 : 36;
  const out = Buffer.alloc(16 + addrLength);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21;
  out[13] = e === undefined ? 0x00 : e.family === 4 ? 0x11 : 0x21;
  out.writeUInt16BE(addrLength, 14);
  if (e === undefined) return out;
  const bytes = (address: string): Buffer => (e.family === 4 ? Buffer.from(address.split(".").map(Number)) : ipv6Bytes(address));
  const size = e.family === 4 ? 4 : 16;
  bytes(e.source.address).copy(out, 16);
  bytes(e.destination.address).copy(out, 16 + size);
  out.writeUInt16BE(e.source.port, 16 + 2 * size);
  out.writeUInt16BE(e.destination.port, 18 + 2 * size);
  return out;
}

/** The 16 bytes of an IPv6 address in any textual form, "::" and embedded IPv4 included. */
function ipv6Bytes(address: string): Buffer {
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") as [string, string] : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
