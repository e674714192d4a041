// The server name (SNI) of a TLS ClientHello, read without terminating TLS: the
// proxy routes by it, then forwards every byte it read, unchanged. Incremental
// (called again with all bytes so far as more arrive) and bounded, since it reads
// whatever anyone who connects chooses to send, before any TLS stack has vetted it.
// Record layer and ClientHello layout: RFC 8446 §5.1 and §4.1.2; server_name: RFC 6066 §3.

/** The most a ClientHello may take on the wire, record headers included; beyond it the client is closed. */
export const CLIENT_HELLO_MAX_BYTES = 16384;

export type HelloResult =
  /** A valid start: more bytes must arrive. */
  | { state: "incomplete" }
  /** The first bytes are not a TLS handshake record carrying a ClientHello: another protocol. */
  | { state: "not-tls"; reason: string }
  /** A TLS handshake, but malformed, or longer than CLIENT_HELLO_MAX_BYTES. */
  | { state: "invalid"; reason: string }
  /** The whole ClientHello, parsed; serverName undefined when it carries no host_name. */
  | { state: "done"; serverName: string | undefined };

const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
/** What one plaintext record may carry (RFC 8446 §5.1); more is a record_overflow. */
const RECORD_MAX = 16384;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_SERVER_NAME = 0;
const NAME_TYPE_HOST_NAME = 0;
/** 253 characters, and one more for the trailing dot of an absolute name. */
const HOST_NAME_MAX = 254;

const INCOMPLETE: HelloResult = Object.freeze({ state: "incomplete" });
const invalid = (reason: string): HelloResult => ({ state: "invalid", reason });

/** Parses the ClientHello at the start of `buf`, which holds every byte received so far. */
export function parseClientHello(buf: Buffer): HelloResult {
  const message = reassemble(buf);
  if (!("body" in message)) return message;
  try {
    return { state: "done", serverName: parseBody(new Cursor(message.body, message.length)) };
  } catch (stop) {
    if (stop instanceof Stop) return stop.result;
    throw stop;
  }
}

/** The ClientHello's body length, as its handshake header says, and what of the body has arrived. */
interface Message {
  length: number;
  body: Buffer;
}

/**
 * Gathers the handshake message from the records it may be split over (any
 * number, of any size), stopping at the record holding its last byte: what
 * follows it (early data, say) is the target's business, not ours.
 */
function reassemble(buf: Buffer): Message | HelloResult {
  // Handshake bytes are copied, not sliced: a client sending 1-byte records, a byte at a time, makes
  // thousands of calls over thousands of records, and an object per record per call would make that costly.
  const gathered = Buffer.allocUnsafe(Math.min(buf.length, CLIENT_HELLO_MAX_BYTES));
  let have = 0; // handshake bytes gathered
  let total: number | undefined; // handshake header and body, once the header has arrived
  let declared = 0; // handshake bytes the records walked say they carry
  let at = 0; // where the next record starts
  // Past CLIENT_HELLO_MAX_BYTES with the message unfinished, the bound below refuses it: no need to walk on.
  while ((total === undefined || declared < total) && at < buf.length && at <= CLIENT_HELLO_MAX_BYTES) {
    const length = recordLength(buf, at);
    if (length === undefined) break;
    if (typeof length !== "number") return length;
    have = gather(buf, at + RECORD_HEADER, Math.min(at + RECORD_HEADER + length, buf.length), gathered, have);
    declared += length;
    at += RECORD_HEADER + length;
    // The handshake type settles whether this is a ClientHello as soon as its byte arrives.
    if (have > 0 && gathered[0] !== HANDSHAKE_CLIENT_HELLO) return { state: "not-tls", reason: `a handshake message of type ${gathered[0]}, not a ClientHello` };
    if (total === undefined && have >= HANDSHAKE_HEADER) total = HANDSHAKE_HEADER + gathered.readUIntBE(1, 3);
  }
  if (total === undefined) return INCOMPLETE;
  // Where the message's last byte is (or, when the records walked do not reach it, the least it can be: one more record header).
  const end = declared >= total ? at - (declared - total) : at + RECORD_HEADER + (total - declared);
  if (end > CLIENT_HELLO_MAX_BYTES) return invalid(`a ClientHello of ${declared >= total ? "" : "at least "}${end} bytes, over ${CLIENT_HELLO_MAX_BYTES}`);
  return { length: total - HANDSHAKE_HEADER, body: gathered.subarray(HANDSHAKE_HEADER, Math.min(have, total)) };
}

/** Copies buf[from, to) to `out` at `at`, as far as `out` has room; returns where the copy ends. */
function gather(buf: Buffer, from: number, to: number, out: Buffer, at: number): number {
  const n = Math.max(0, Math.min(to - from, out.length - at));
  // A loop for a few bytes is cheaper than the native call.
  if (n < 32) for (let i = 0; i < n; i++) out[at + i] = buf[from + i]!;
  else buf.copy(out, at, from, from + n);
  return at + n;
}

/**
 * The content length of the handshake record starting at `at` (its 5-byte
 * header complete or not), or why it is refused; undefined while a valid header
 * is still arriving. The first record's header decides whether the client
 * speaks TLS at all; a later one that is wrong is a broken handshake.
 */
function recordLength(buf: Buffer, at: number): number | undefined | HelloResult {
  const refuse = (reason: string): HelloResult => (at === 0 ? { state: "not-tls", reason } : invalid(`a later record: ${reason}`));
  const type = buf[at];
  const major = buf[at + 1];
  const minor = buf[at + 2];
  const high = buf[at + 3];
  const low = buf[at + 4];
  if (type !== undefined && type !== CONTENT_HANDSHAKE) return refuse(`content type ${type}, not a handshake record`);
  // 0x0301..0x0304; an SSLv2-style hello (first byte with its high bit set) was refused above.
  if (major !== undefined && major !== 3) return refuse(`record version ${major}.x, not TLS`);
  if (minor !== undefined && (minor < 1 || minor > 4)) return refuse(`record version 3.${minor}, not TLS`);
  // The high byte alone can already say the record is over 2^14.
  if (high !== undefined && high > RECORD_MAX >> 8) return invalid(`a record of more than ${RECORD_MAX} bytes`);
  if (high === undefined || low === undefined) return undefined;
  const length = (high << 8) | low;
  if (length > RECORD_MAX) return invalid(`a record of ${length} bytes, over ${RECORD_MAX}`);
  // TLS forbids empty handshake fragments (RFC 8446 §5.1).
  if (length === 0) return refuse("an empty handshake record");
  return length;
}

/** Ends the parse with a verdict from any depth; caught in parseClientHello, never escapes it. */
class Stop {
  constructor(readonly result: HelloResult) {}
}

/**
 * Reads a message of which only a prefix may have arrived. Each read names the
 * end of the vector enclosing it: a read past that end is a lying length (invalid
 * now, whatever arrives later); a read past what arrived waits for more.
 */
class Cursor {
  pos = 0;
  constructor(
    private readonly data: Buffer,
    readonly end: number,
  ) {}

  /** Refuses `n` more bytes that would run past `limit`. */
  fits(n: number, limit: number, what: string): void {
    if (this.pos + n > limit) throw new Stop(invalid(`${what} runs past the length enclosing it`));
  }

  /** What has arrived of the next `n` bytes. */
  peek(n: number): Buffer {
    return this.data.subarray(this.pos, this.pos + n);
  }

  take(n: number, limit: number, what: string): Buffer {
    this.fits(n, limit, what);
    if (this.pos + n > this.data.length) throw new Stop(INCOMPLETE);
    const bytes = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return bytes;
  }

  u8(limit: number, what: string): number {
    return this.take(1, limit, what)[0]!;
  }

  u16(limit: number, what: string): number {
    return this.take(2, limit, what).readUInt16BE(0);
  }
}

/** The ClientHello body up to its extensions, then those: the server name, if any. */
function parseBody(c: Cursor): string | undefined {
  const end = c.end;
  const version = c.u16(end, "legacy_version");
  if (version >> 8 !== 3) throw new Stop(invalid(`a ClientHello of version ${version >> 8}.${version & 0xff}`));
  c.take(32, end, "random");
  const sessionId = c.u8(end, "legacy_session_id length");
  if (sessionId > 32) throw new Stop(invalid(`a session id of ${sessionId} bytes, over 32`));
  c.take(sessionId, end, "legacy_session_id");
  const suites = c.u16(end, "cipher_suites length");
  // Two bytes a suite, and at least one.
  if (suites < 2 || suites % 2 !== 0) throw new Stop(invalid(`cipher_suites of ${suites} bytes`));
  c.take(suites, end, "cipher_suites");
  const compressions = c.u8(end, "legacy_compression_methods length");
  if (compressions < 1) throw new Stop(invalid("no compression methods"));
  c.take(compressions, end, "legacy_compression_methods");
  // Before TLS 1.3 a hello may end here: no extensions, so no server name.
  if (c.pos === end) return undefined;
  const length = c.u16(end, "extensions length");
  if (c.pos + length !== end) throw new Stop(invalid(`extensions of ${length} bytes in the ${end - c.pos} left of the ClientHello`));
  return parseExtensions(c, end);
}

function parseExtensions(c: Cursor, end: number): string | undefined {
  const seen = new Set<number>();
  let serverName: string | undefined;
  while (c.pos < end) {
    const type = c.u16(end, "extension type");
    const length = c.u16(end, `extension ${type} length`);
    // RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type"; two server names could route one way and serve another.
    if (seen.has(type)) throw new Stop(invalid(`extension ${type} twice`));
    seen.add(type);
    c.fits(length, end, `extension ${type}`);
    if (type === EXTENSION_SERVER_NAME) serverName = parseServerName(c, c.pos + length);
    else c.take(length, end, `extension ${type}`);
  }
  return serverName;
}

/** The server_name extension's data, ending at `end`: a non-empty list of (name_type, 2-byte length, name); the first host_name counts. */
function parseServerName(c: Cursor, end: number): string | undefined {
  const length = c.u16(end, "server_name_list length");
  if (length === 0 || c.pos + length !== end) throw new Stop(invalid(`a server_name_list of ${length} bytes in a server_name extension of ${end - c.pos} left`));
  let hostName: string | undefined;
  while (c.pos < end) {
    const nameType = c.u8(end, "server name type");
    const nameLength = c.u16(end, "server name length");
    if (nameType === NAME_TYPE_HOST_NAME && hostName === undefined) hostName = parseHostName(c, nameLength, end);
    else c.take(nameLength, end, `a server name of type ${nameType}`);
  }
  return hostName;
}

/** A host_name of `length` bytes, checked as far as it has arrived, lowercased and without its trailing dot. */
function parseHostName(c: Cursor, length: number, end: number): string {
  if (length === 0 || length > HOST_NAME_MAX) throw new Stop(invalid(`a host_name of ${length} bytes`));
  c.fits(length, end, "host_name");
  // latin1 keeps one character a byte, so a byte over 0x7f fails the character check rather than being decoded.
  const arrived = c.peek(length).toString("latin1");
  const problem = nameProblem(arrived, arrived.length === length);
  if (problem !== undefined) throw new Stop(invalid(`host_name ${JSON.stringify(arrived)}: ${problem}`));
  c.take(length, end, "host_name");
  return arrived.toLowerCase().replace(/\.$/, "");
}

/** Why `text` (the whole name, or only its start when `whole` is false) is not a DNS host name; undefined when it is. */
function nameProblem(text: string, whole: boolean): string | undefined {
  // Letters, digits, '-' and '.'; '_' is not a host name character, but is common in names given to services.
  if (!/^[A-Za-z0-9._-]*$/.test(text)) return "a character other than letters, digits, '-', '_' and '.'";
  if (text.startsWith(".")) return "starts with '.'";
  if (text.includes("..")) return "an empty label";
  if (!whole) return undefined;
  // One trailing dot (an absolute name) is dropped; a second would have made an empty label above.
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  if (name.length > 253) return `${name.length} characters, over 253`;
  return undefined;
}
