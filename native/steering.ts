// Typed facade over the BPF steering part of the addon (native/bpf.c).
//
// One listening socket per app sits in a SOCKMAP slot; an LPM trie maps
// (destination port, address prefix) to the slot; the sk_lookup program in
// native/steering.bpf.c hands each new connection to that socket. The key layout
// is native/steering.h: this file mirrors it byte for byte and checks its sizes
// against the addon's before the first use.
//
// Hand-over to another process: exportFds() gives dups of the link and map fds
// to send over SCM_RIGHTS (or to keep in systemd's fd store); the receiver's
// Steering.load(path, inherited) runs its program on those same maps, swapped
// into the same link, and the sender then release()s (close() would detach).
import { endianness } from "node:os";
import { isIPv4, isIPv6 } from "node:net";
import { fileURLToPath } from "node:url";

import { SwitchyardError, isSyscallError } from "../common/errors.js";
import { addon } from "./index.js";

/** struct steer_key: prefixlen u32, port u16, family u8, pad u8, addr[16]. */
export const STEER_KEY_SIZE = 24;
/** struct steer_port_entry: steer_key, slot u32. */
export const STEER_PORT_ENTRY_SIZE = 28;
/** Sockmap slots (apps): 0 .. STEER_SOCKETS_MAX - 1. */
export const STEER_SOCKETS_MAX = 4096;
/** Bits of the key before addr that every prefix covers (port, family, pad). */
const KEY_FIXED_BITS = 32;
/** struct steer_counters: steered, missing_socket, assign_failed (u64 each). */
const COUNTER_FIELDS = 3;

/** The compiled program, next to the addon: dist/native/steering.js → native/build/. */
export const defaultObjectPath = fileURLToPath(new URL("../../native/build/steering.bpf.o", import.meta.url));

export interface PortBinding {
  family: 4 | 6;
  /** Destination address prefix in CIDR form ("127.0.0.0/8", "::/0"); a bare address means /32 or /128. */
  prefix: string;
  port: number;
  /** The app's sockmap slot. */
  slot: number;
}

export type PortKey = Omit<PortBinding, "slot">;

export interface SlotCounters {
  /** Connections handed to the slot's socket. */
  steered: number;
  /** Connections to the slot's ports dropped because the slot had no socket. */
  missingSocket: number;
  /** Connections dropped because bpf_sk_assign refused the socket (e.g. IPv4 to an IPv6-only socket). */
  assignFailed: number;
}

export interface LinkInfo {
  id: number;
  progId: number;
  /** Inode of the network namespace the program is attached to. */
  netnsIno: number;
}

/** Fds of a Steering, from exportFds(): fresh close-on-exec dups owned by the caller. */
export interface SteeringFds {
  /** The sk_lookup netns link; null while detached. */
  link: number | null;
  sockets: number;
  ports: number;
  counters: number;
}

/** Another process's steering to build on (its exportFds(), received); the fds stay the caller's. */
export interface InheritedSteering {
  /** A link to take over; without one, attach() makes a new link as usual. */
  link?: number | null;
  sockets: number;
  ports: number;
  counters: number;
}

export type BpfAvailability = { ok: true } | { ok: false; reason: string };

interface NativeSteering {
  attach(netnsPath?: string): void;
  detach(): boolean;
  setSocket(slot: number, fd: number): void;
  deleteSocket(slot: number): boolean;
  setPorts(entries: Buffer): void;
  deletePorts(keys: Buffer): number;
  readCounters(slots?: number): BigUint64Array;
  readPorts(): Buffer;
  linkInfo(): LinkInfo | null;
  exportFds(): SteeringFds;
  release(): void;
  close(): void;
}

interface SteeringBinding {
  steeringLoad(objPath: string, inherited?: InheritedSteering): NativeSteering;
  sizeofSteerKey: number;
  sizeofSteerPortEntry: number;
  steerSocketsMax: number;
  steerCounterFields: number;
}

const native = addon as unknown as SteeringBinding;
const littleEndian = endianness() === "LE";

/** Throws unless this file and the addon agree on steering.h (tubular's size check). */
function checkLayout(): void {
  const ours = [STEER_KEY_SIZE, STEER_PORT_ENTRY_SIZE, STEER_SOCKETS_MAX, COUNTER_FIELDS];
  const theirs = [native.sizeofSteerKey, native.sizeofSteerPortEntry, native.steerSocketsMax, native.steerCounterFields];
  if (ours.some((v, i) => v !== theirs[i])) {
    throw new SwitchyardError(
      "BPF_UNAVAILABLE",
      `native/steering.ts does not match the addon's steering.h: key/entry/slots/counters ${ours.join("/")} vs ${theirs.join("/")}; rebuild`,
    );
  }
}

/** Loaded (not yet attached) steering program and its maps; nothing is pinned. */
export class Steering {
  #native: NativeSteering;

  private constructor(n: NativeSteering) {
    this.#native = n;
  }

  /**
   * Loads the BPF object; throws a SyscallError (syscall "bpf_object__load" …) without the privileges.
   *
   * With `inherited` (another process's exportFds()), the program runs on those
   * maps instead of new ones, so their entries, sockets and counters carry over;
   * a map not laid out as steering.h says throws ERR_BPF_OBJECT_MISMATCH naming
   * it. With `inherited.link`, the new program replaces the old one in that link
   * in one step (no connection goes unsteered) and this object owns the link:
   * linkInfo(), detach() and close() act on it, attach() throws
   * ERR_STEERING_ATTACHED. The caller still owns (and closes) the fds it passed.
   */
  static load(objPath: string = defaultObjectPath, inherited?: InheritedSteering): Steering {
    checkLayout();
    return new Steering(native.steeringLoad(objPath, inherited));
  }

  /** Attaches the program to a network namespace with a BPF link (default: this process's). */
  attach(netnsPath?: string): void {
    this.#native.attach(netnsPath);
  }

  /** Removes the link; false if it was not attached. Connections then take the kernel's normal path. */
  detach(): boolean {
    return this.#native.detach();
  }

  /** Puts an app's listening socket in its slot (replacing any). The kernel keeps its own reference. */
  setAppSocket(slot: number, fd: number): void {
    this.#native.setSocket(slot, fd);
  }

  /** Empties a slot: its ports are then refused. false if it was already empty. */
  removeAppSocket(slot: number): boolean {
    return this.#native.deleteSocket(slot);
  }

  /** Adds or replaces port bindings in one native call. Validates all first; not atomic on a kernel error. */
  setPorts(list: readonly PortBinding[]): void {
    if (list.length > 0) this.#native.setPorts(encodePortEntries(list));
  }

  /** Removes port bindings; returns how many existed. */
  deletePorts(list: readonly PortKey[]): number {
    if (list.length === 0) return 0;
    const buf = Buffer.alloc(list.length * STEER_KEY_SIZE);
    list.forEach((k, i) => writeKey(buf, i * STEER_KEY_SIZE, k, `list[${i}]`));
    return this.#native.deletePorts(buf);
  }

  /** Counters of slots 0 .. slots-1 summed over CPUs; slots whose counters are all zero are left out. */
  counters(slots: number = STEER_SOCKETS_MAX): Map<number, SlotCounters> {
    const raw = this.#native.readCounters(slots);
    const out = new Map<number, SlotCounters>();
    for (let slot = 0; slot * COUNTER_FIELDS < raw.length; slot++) {
      const base = slot * COUNTER_FIELDS;
      const steered = raw[base] ?? 0n;
      const missingSocket = raw[base + 1] ?? 0n;
      const assignFailed = raw[base + 2] ?? 0n;
      if (steered === 0n && missingSocket === 0n && assignFailed === 0n) continue;
      out.set(slot, { steered: Number(steered), missingSocket: Number(missingSocket), assignFailed: Number(assignFailed) });
    }
    return out;
  }

  /** The attached link, or null when detached. */
  linkInfo(): LinkInfo | null {
    return this.#native.linkInfo();
  }

  /**
   * Every port binding in the (possibly inherited) ports map, in the map's
   * order, prefixes as decodePortEntries() writes them: setPorts() of the
   * result puts back the same entries.
   */
  portEntries(): PortBinding[] {
    return decodePortEntries(this.#native.readPorts());
  }

  /** Dups of the link (null while detached) and map fds for another process; the caller closes them. */
  exportFds(): SteeringFds {
    return this.#native.exportFds();
  }

  /**
   * Like close() but without detaching: this process's fds of the link, program
   * and maps are closed, and a link whose fd another process (or systemd's fd
   * store) holds keeps steering. Without such a holder the link goes with its
   * last fd. Idempotent; every other method throws afterwards.
   */
  release(): void {
    this.#native.release();
  }

  /** Detaches and frees the program and maps. Idempotent; every other method throws afterwards. */
  close(): void {
    this.#native.close();
  }
}

export function loadSteering(objPath: string = defaultObjectPath, inherited?: InheritedSteering): Steering {
  return Steering.load(objPath, inherited);
}

/**
 * Whether this process can load the steering program, for `--steering auto`.
 * Only loads (and frees) it: attaching is not tried.
 */
export function bpfAvailable(objPath: string = defaultObjectPath): BpfAvailability {
  let s: Steering;
  try {
    s = Steering.load(objPath);
  } catch (e) {
    return { ok: false, reason: describeLoadError(e) };
  }
  s.close();
  return { ok: true };
}

export function describeLoadError(e: unknown): string {
  if (!isSyscallError(e)) return e instanceof Error ? e.message : String(e);
  let hint = "";
  if (e.code === "EPERM") hint = " (needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN)";
  else if (e.code === "EACCES") hint = " (the verifier rejected the program: see the error's log)";
  else if (e.code === "ENOENT" && e.syscall === "bpf_object__open_file") hint = ` (no BPF object at ${defaultObjectPath}? run make build)`;
  else if (e.code === "EINVAL" || e.code === "ENOTSUPP" || e.code === "EOPNOTSUPP") hint = " (kernel without sk_lookup, needs Linux 5.9+)";
  return `${e.syscall}: ${e.code}${hint}`;
}

/** Packs bindings as struct steer_port_entry records. Exported for tests. */
export function encodePortEntries(list: readonly PortBinding[]): Buffer {
  const buf = Buffer.alloc(list.length * STEER_PORT_ENTRY_SIZE);
  list.forEach((b, i) => {
    const off = i * STEER_PORT_ENTRY_SIZE;
    writeKey(buf, off, b, `list[${i}]`);
    if (!Number.isInteger(b.slot) || b.slot < 0 || b.slot >= STEER_SOCKETS_MAX) {
      throw invalid(`list[${i}].slot`, `must be an integer 0-${STEER_SOCKETS_MAX - 1}`, b.slot);
    }
    writeU32(buf, off + STEER_KEY_SIZE, b.slot);
  });
  return buf;
}

/** Packs one struct steer_key at `off`. Exported for tests. */
export function writeKey(buf: Buffer, off: number, k: PortKey, where = "key"): void {
  if (!Number.isInteger(k.port) || k.port < 1 || k.port > 65535) throw invalid(`${where}.port`, "must be 1-65535", k.port);
  const { bytes, bits } = parsePrefix(k.prefix, k.family, `${where}.prefix`);
  writeU32(buf, off, KEY_FIXED_BITS + bits);
  if (littleEndian) buf.writeUInt16LE(k.port, off + 4);
  else buf.writeUInt16BE(k.port, off + 4);
  buf[off + 6] = k.family;
  buf[off + 7] = 0;
  buf.fill(0, off + 8, off + STEER_KEY_SIZE);
  bytes.copy(buf, off + 8);
}

function writeU32(buf: Buffer, off: number, v: number): void {
  if (littleEndian) buf.writeUInt32LE(v, off);
  else buf.writeUInt32BE(v, off);
}

function readU32(buf: Buffer, off: number): number {
  return littleEndian ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
}

/**
 * Unpacks struct steer_port_entry records, the inverse of encodePortEntries.
 * Prefixes come back in CIDR form with the length always written out, also
 * for a single address ("127.0.0.1/32", "::1/128"), the address masked as
 * stored; IPv4 dotted, IPv6 in RFC 5952 form ("2001:db8::/32", "::ffff:102:304/128",
 * never a dotted tail). parsePrefix reads all of these, so
 * setPorts(decodePortEntries(b)) stores the very keys of `b`. Exported for tests.
 */
export function decodePortEntries(buf: Buffer): PortBinding[] {
  if (buf.length % STEER_PORT_ENTRY_SIZE !== 0) throw invalid("entries", `length must be a multiple of ${STEER_PORT_ENTRY_SIZE}`, buf.length);
  const out: PortBinding[] = [];
  for (let off = 0, i = 0; off < buf.length; off += STEER_PORT_ENTRY_SIZE, i++) {
    const family = buf[off + 6];
    const bits = readU32(buf, off) - KEY_FIXED_BITS;
    if ((family !== 4 && family !== 6) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
      throw invalid(`entries[${i}]`, "is not a steer_key of steering.h", buf.subarray(off, off + STEER_KEY_SIZE).toString("hex"));
    }
    const addr = buf.subarray(off + 8, off + 8 + (family === 4 ? 4 : 16));
    out.push({
      family,
      prefix: `${family === 4 ? Array.from(addr).join(".") : formatIPv6(addr)}/${bits}`,
      port: littleEndian ? buf.readUInt16LE(off + 4) : buf.readUInt16BE(off + 4),
      slot: readU32(buf, off + STEER_KEY_SIZE),
    });
  }
  return out;
}

/** RFC 5952 text of 16 address bytes: lower-case hex, the longest run of 2+ zero words (the first on a tie) as "::". */
function formatIPv6(bytes: Buffer): string {
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(":");
  return best < 0 ? hex(words) : `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

/** "10.0.0.0/8" → the address bytes (masked to the prefix) and the prefix length. */
export function parsePrefix(prefix: string, family: 4 | 6, where = "prefix"): { bytes: Buffer; bits: number } {
  const slash = prefix.indexOf("/");
  const addr = slash < 0 ? prefix : prefix.slice(0, slash);
  const max = family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const text = prefix.slice(slash + 1);
    bits = /^\d{1,3}$/.test(text) ? Number(text) : NaN;
    if (!(bits >= 0 && bits <= max)) throw invalid(where, `prefix length must be 0-${max}`, prefix);
  }
  let bytes: Buffer;
  if (family === 4) {
    if (!isIPv4(addr)) throw invalid(where, "must be an IPv4 address or prefix", prefix);
    bytes = Buffer.from(addr.split(".").map(Number));
  } else if (family === 6) {
    if (!isIPv6(addr)) throw invalid(where, "must be an IPv6 address or prefix", prefix);
    bytes = ipv6Bytes(addr);
  } else {
    throw invalid(where.replace(/\.prefix$/, ".family"), "must be 4 or 6", family);
  }
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return { bytes, bits };
}

/** 16 bytes of an IPv6 address already checked by isIPv6 (handles "::" and a dotted IPv4 tail). */
function ipv6Bytes(addr: string): Buffer {
  const zone = addr.indexOf("%");
  let text = zone < 0 ? addr : addr.slice(0, zone);
  const words: number[] = [];
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  let v4: number[] = [];
  if (tail.includes(".")) {
    v4 = tail.split(".").map(Number);
    text = text.slice(0, lastColon + 1) + "0:0"; // placeholder words, replaced below
  }
  const [head = "", rest] = text.split("::");
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((w) => parseInt(w, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  words.push(...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right);
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  if (v4.length === 4) Buffer.from(v4).copy(out, 12);
  return out;
}

function invalid(where: string, why: string, value: unknown): RangeError {
  const e = new RangeError(`${where} ${why}, got ${JSON.stringify(value)}`) as RangeError & { code: string };
  e.code = "ERR_INVALID_ARG_VALUE";
  return e;
}
