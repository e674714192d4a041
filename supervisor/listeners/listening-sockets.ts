// The TCP sockets that LISTEN in this network namespace, read from
// /proc/self/net/tcp{,6}. BPF mode needs them because its sk_lookup program runs
// before the kernel's own listener lookup: a port it steers is taken from
// whoever listens there, with no EADDRINUSE to say so. /proc/self/net follows
// the reading process's network namespace, which is the one we attach to.
import { closeSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";

import { formatIPv4, formatIPv6 } from "../../config/addresses.js";

export interface ListeningSocket {
  /** As bound: "127.0.0.1", "::", "::ffff:127.0.0.1". */
  address: string;
  port: number;
  /** /proc's inode column, as socketInode() reports it for an fd. */
  inode: number;
  /** "127.0.0.1:7777", "[::1]:7777": how ports mode names a listener. */
  key: string;
}

/** st column value of TCP_LISTEN (include/net/tcp_states.h). */
const LISTEN = "0A";
const HOST_LE = endianness() === "LE";

/**
 * The kernel prints each 32-bit word of the address with %08X, that is in host
 * byte order; writing the word back in host order gives the network bytes. The
 * port is printed after ntohs, so it is already a plain number.
 */
function addressOf(hex: string, littleEndian: boolean): string | undefined {
  if (hex.length !== 8 && hex.length !== 32) return undefined;
  const bytes = Buffer.alloc(hex.length / 2);
  for (let i = 0; i < hex.length; i += 8) {
    const word = parseInt(hex.slice(i, i + 8), 16);
    if (Number.isNaN(word)) return undefined;
    if (littleEndian) bytes.writeUInt32LE(word, i / 2);
    else bytes.writeUInt32BE(word, i / 2);
  }
  const n = BigInt(`0x${bytes.toString("hex")}`);
  return bytes.length === 4 ? formatIPv4(n) : formatIPv6(n);
}

/** One line: a listener, "other" for a socket in another state, undefined for the header or a line not understood. */
function parseLine(line: string, littleEndian: boolean): ListeningSocket | "other" | undefined {
  // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode …"
  const f = line.trim().split(/\s+/, 10);
  if (f.length < 10 || !/^\d+:$/.test(f[0]!)) return undefined;
  if (f[3] !== LISTEN) return "other";
  const [hex = "", portHex = ""] = f[1]!.split(":");
  const address = addressOf(hex, littleEndian);
  const port = parseInt(portHex, 16);
  const inode = Number(f[9]);
  if (address === undefined || !(port >= 0 && port <= 65535) || !Number.isInteger(inode)) return undefined;
  return { address, port, inode, key: address.includes(":") ? `[${address}]:${port}` : `${address}:${port}` };
}

/**
 * Collects listeners line by line up to the first socket in another state: the
 * kernel prints its listening hash before the established one (tcp_get_idx in
 * net/ipv4/tcp_ipv4.c, shared by tcp6), and under load every connection has a
 * line in the latter, so reading past the listeners would cost per connection.
 */
class ListenLines {
  readonly sockets: ListeningSocket[] = [];

  constructor(private readonly littleEndian: boolean) {}

  /** false once the listeners have ended: read no further. */
  take(line: string): boolean {
    const s = parseLine(line, this.littleEndian);
    if (s === "other") return false;
    if (s) this.sockets.push(s);
    return true;
  }
}

/**
 * The listeners of one /proc/net/tcp or tcp6 text. `littleEndian` is the host's
 * order; a parameter only so tests can feed either.
 */
export function parseProcNetTcp(text: string, littleEndian: boolean = HOST_LE): ListeningSocket[] {
  const lines = new ListenLines(littleEndian);
  for (const line of text.split("\n")) if (!lines.take(line)) break;
  return lines.sockets;
}

const CHUNK = 64 * 1024;

/**
 * Reads a file chunk by chunk up to the end of its listeners: the kernel makes
 * /proc text as it is read, so what is not read (one line per connection) costs
 * nothing. A kernel without IPv6 has no tcp6 file.
 */
function readListeners(file: string): ListeningSocket[] {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const lines = new ListenLines(HOST_LE);
  try {
    const buf = Buffer.alloc(CHUNK);
    let partial = "";
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) {
        lines.take(partial);
        break;
      }
      const text = partial + buf.toString("latin1", 0, n);
      const end = text.lastIndexOf("\n");
      partial = text.slice(end + 1);
      let more = true;
      for (const line of text.slice(0, Math.max(end, 0)).split("\n")) if (!(more = lines.take(line))) break;
      if (!more) break;
    }
  } finally {
    closeSync(fd);
  }
  return lines.sockets;
}

/** Every listening TCP socket of this network namespace. */
export function listeningSockets(): ListeningSocket[] {
  return [...readListeners("/proc/self/net/tcp"), ...readListeners("/proc/self/net/tcp6")];
}
