// The only importer of the .node file: a typed facade over the C addon.
// Every function is synchronous and throws a SyscallError (common/errors.ts) on
// failure: `code` is the errno name ("EADDRINUSE"), `syscall` the failing call,
// `errno` negative as in Node's own system errors.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export interface SocketName {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface ReceivedFds {
  data: Buffer;
  fds: number[];
}

/** One datagram received by recvDatagram(). */
export interface Datagram {
  data: Buffer;
  /** Received fds, close-on-exec; the caller owns (and closes) them. */
  fds: number[];
  /** The sender's pid (SCM_CREDENTIALS, in our pid namespace); 0 if the socket does not pass credentials. */
  pid: number;
}

export interface ListenOptions {
  /** Default true: an IPv6 listener never takes IPv4 connections unless asked. */
  v6only?: boolean;
  reusePort?: boolean;
  /** Bind an address not (yet) configured on this host. */
  freebind?: boolean;
  /** TCP_NODELAY, inherited by every accepted connection. */
  noDelay?: boolean;
  /** SO_KEEPALIVE with this TCP_KEEPIDLE (seconds), inherited by every accepted connection. */
  keepAliveIdleS?: number;
  /** TCP_KEEPINTVL (seconds); required with keepAliveIdleS. */
  keepAliveIntervalS?: number;
  /** TCP_KEEPCNT; required with keepAliveIdleS. */
  keepAliveProbes?: number;
}

interface Binding {
  listenTcp(host: string, port: number, backlog: number, opts?: ListenOptions): number;
  socketName(fd: number): SocketName;
  socketInode(fd: number): number;
  socketPair(): [number, number];
  sendFds(sock: number, data: Buffer, fds: number[]): number;
  recvFds(sock: number, maxBytes: number, maxFds: number): ReceivedFds;
  setRecvTimeout(sock: number, ms: number): void;
  closeFd(fd: number): void;
  dupFd(fd: number): number;
  setBlocking(fd: number, blocking: boolean): void;
  getPeerCred(fd: number): PeerCred;
  lockExclusive(fd: number): void;
  setKeepAlive(fd: number, idleS: number, intervalS: number, probes: number): void;
  pendingBytes(fd: number): number;
  isReset(fd: number): boolean;
  counterTableCreate(): number;
  counterTableMap(fd: number): object;
  counterAcquire(table: object, slot: number, row: number, limit: number): boolean;
  counterRelease(table: object, slot: number, row: number): void;
  counterRead(table: object, slot: number): number;
  counterSettle(table: object, row: number): void;
  clientAcquire(table: object, key: number, row: number, limit: number): number;
  clientRelease(table: object, bucket: number, row: number): void;
  memfdCreate(name: string): number;
  unixDgramSocket(bindPath?: string): number;
  sendDatagram(sock: number, path: string, data: Buffer, fds: number[]): void;
  recvDatagram(sock: number, maxBytes: number, maxFds: number): Datagram | null;
}

// Resolved against this file (dist/native/index.js), never against the cwd.
const addonPath = fileURLToPath(new URL("../../native/build/Release/switchyard.node", import.meta.url));
const binding = createRequire(import.meta.url)(addonPath) as Binding;

/** Non-blocking, close-on-exec, SO_REUSEADDR listening socket; port 0 picks an ephemeral port. */
export function listenTcp(host: string, port: number, backlog: number, opts?: ListenOptions): number {
  return binding.listenTcp(host, port, backlog, opts);
}

export function socketName(fd: number): SocketName {
  return binding.socketName(fd);
}

/** The INODE in /proc/PID/fd's "socket:[INODE]": equal inodes mean the same socket. */
export function socketInode(fd: number): number {
  return binding.socketInode(fd);
}

export function socketPair(): [number, number] {
  return binding.socketPair();
}

/**
 * One sendmsg carrying `fds` (at most 253) on `data`, which must be non-empty when
 * fds are sent. May send fewer bytes than data.length: returns the count sent.
 */
export function sendFds(sock: number, data: Buffer, fds: number[]): number {
  return binding.sendFds(sock, data, fds);
}

/**
 * One recvmsg; received fds are close-on-exec. More fds than `maxFds` arriving
 * throws EMSGSIZE after closing those that did arrive. Empty `data` means EOF.
 * A timeout (setRecvTimeout) or a non-blocking socket throws EAGAIN.
 */
export function recvFds(sock: number, maxBytes: number, maxFds: number): ReceivedFds {
  return binding.recvFds(sock, maxBytes, maxFds);
}

/** SO_RCVTIMEO; 0 blocks forever. */
export function setRecvTimeout(sock: number, ms: number): void {
  binding.setRecvTimeout(sock, ms);
}

export function closeFd(fd: number): void {
  binding.closeFd(fd);
}

export function getPeerCred(fd: number): PeerCred {
  return binding.getPeerCred(fd);
}

/** SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT on a connected socket. */
export function setKeepAlive(fd: number, idleS: number, intervalS: number, probes: number): void {
  binding.setKeepAlive(fd, idleS, intervalS, probes);
}

/** Bytes written to a TCP socket that its peer has not acknowledged yet (SIOCOUTQ); 0 once the connection is closed. */
export function pendingBytes(fd: number): number {
  return binding.pendingBytes(fd);
}

/** Whether a TCP connection ended in an error in the kernel (reset, timed out); a close by FIN, either way or both, is not. */
export function isReset(fd: number): boolean {
  return binding.isReset(fd);
}

/** App slots and worker rows of the shared connection counters (native/counters.c). */
export const COUNTER_SLOTS = 4096;
export const COUNTER_ROWS = 1024;
/** What CounterTable.acquireClient answers instead of a bucket. */
export const CLIENT_AT_LIMIT = -1;
export const CLIENT_TABLE_FULL = -2;
/** MaxConnectionsPerClient's ceiling: a bucket's count is 16 bits. */
export const MAX_CLIENT_CONNECTIONS = 65535;

/**
 * Open connections per app, shared by the supervisor and every worker through
 * one memfd (counters.c): a worker counts into its own row and into the app's
 * total; the supervisor settles an exited worker's row.
 */
export class CounterTable {
  private readonly table: object;
  constructor(readonly fd: number) {
    this.table = binding.counterTableMap(fd);
  }

  /** A new table's memfd (close-on-exec: hand it to a child explicitly). */
  static create(): number {
    return binding.counterTableCreate();
  }

  /** Counts one connection of `slot` for `row` if the total is below `limit`; false (nothing counted) otherwise. */
  acquire(slot: number, row: number, limit: number): boolean {
    return binding.counterAcquire(this.table, slot, row, limit);
  }

  release(slot: number, row: number): void {
    binding.counterRelease(this.table, slot, row);
  }

  read(slot: number): number {
    return binding.counterRead(this.table, slot);
  }

  /** Takes an exited worker's counts out of the totals and clears its row. */
  settle(row: number): void {
    binding.counterSettle(this.table, row);
  }

  /**
   * Counts one connection of the client `key` (48 bits, non-zero: app and
   * address hashed) for `row` if it has fewer than `limit` (at most 65535) open:
   * the bucket to release later; CLIENT_AT_LIMIT; or CLIENT_TABLE_FULL (nothing counted).
   */
  acquireClient(key: number, row: number, limit: number): number {
    return binding.clientAcquire(this.table, key, row, limit);
  }

  releaseClient(bucket: number, row: number): void {
    binding.clientRelease(this.table, bucket, row);
  }
}

/** A new close-on-exec fd for the same socket (F_DUPFD_CLOEXEC). */
export function dupFd(fd: number): number {
  return binding.dupFd(fd);
}

/** Clears (or sets) O_NONBLOCK, for the socket in every process that holds it. */
export function setBlocking(fd: number, blocking: boolean): void {
  binding.setBlocking(fd, blocking);
}

/** flock(LOCK_EX | LOCK_NB): throws EWOULDBLOCK while another process holds the lock. */
export function lockExclusive(fd: number): void {
  binding.lockExclusive(fd);
}

/**
 * memfd_create(name, MFD_CLOEXEC): an empty in-memory file, e.g. a small state
 * file for systemd's fd store. Write it with fs.writeSync(fd, ...); it lives as
 * long as some process (or the fd store) holds an fd of it.
 */
export function memfdCreate(name: string): number {
  return binding.memfdCreate(name);
}

/**
 * An AF_UNIX SOCK_DGRAM socket, close-on-exec and non-blocking, with
 * SO_PASSCRED on (received datagrams carry the sender's pid). With `bindPath`
 * it is bound there; "@name" means the abstract name "name" (as in
 * $NOTIFY_SOCKET). A file path longer than 107 bytes throws ENAMETOOLONG
 * rather than binding a shorter one: pass a /proc/self/fd/N/name form
 * (common/unix-path.ts).
 */
export function unixDgramSocket(bindPath?: string): number {
  return binding.unixDgramSocket(bindPath);
}

/**
 * One sendmsg of `data` (non-empty) to the socket at `path` ("@name":
 * abstract), with `fds` (at most 253) as SCM_RIGHTS: an sd_notify message
 * such as "FDSTORE=1\nFDNAME=x" with the fds to store. The fds stay the
 * caller's. On a non-blocking socket (all of unixDgramSocket's) a receiver
 * with a full queue throws EAGAIN.
 */
export function sendDatagram(sock: number, path: string, data: Buffer, fds: number[]): void {
  binding.sendDatagram(sock, path, data, fds);
}

/**
 * One recvmsg: the next datagram with its fds and sender's pid, or null if
 * none is queued (EAGAIN). A datagram with more fds than `maxFds` or more
 * bytes than `maxBytes` throws EMSGSIZE, its fds closed: it is gone either way.
 */
export function recvDatagram(sock: number, maxBytes: number, maxFds: number): Datagram | null {
  return binding.recvDatagram(sock, maxBytes, maxFds);
}

/** The raw addon, for the other facades in native/ (steering.ts); not for use elsewhere. */
export { binding as addon };
