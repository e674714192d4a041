// Typed facade over the relay (native/relay*.c): TCP connections carried by
// an epoll thread of the addon's, with splice() through pipes, while JS keeps
// routing, balancing, limits and the access log.
//
// One Relay per process. Two ways in:
// - listen() has the thread accept on a listening socket; JS gets each
//   connection's fd and addresses, picks a target and dial()s it: the thread
//   connects (reporting connected or failed, when JS may redial() elsewhere)
//   and carries the connection.
// - add() takes over an established pair's fds (dup them from the net.Socket,
//   then destroy it: common/socket-fd.ts, dupFd).
// Either way the relay closes the fds when the connection ends; done() then
// runs once, on the JS thread, never within add() or dial(). A failing add()
// or dial() throws a SyscallError and leaves the fds open and the caller's.
import { getSystemErrorName } from "node:util";

import { addon, closeFd } from "./index.js";
import { KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES } from "../common/tcp-keepalive.js";

export type RelayEndReason = "closed" | "client_error" | "target_error" | "idle_timeout" | "shutdown";

/** Indexed by enum relay_reason (native/relay.h). */
const REASONS: readonly RelayEndReason[] = ["closed", "client_error", "target_error", "idle_timeout", "shutdown"];

/** Fields per connection in a batch from the addon: id, reason, bytesIn, bytesOut, errno. */
const END_FIELDS = 5;
/** Fields per connect outcome: kind (enum relay_event_kind), id, failure (enum relay_dial_failure), errno. */
const EVENT_FIELDS = 4;
const EVENT_CONNECTED = 1;
/** Indexed by enum relay_dial_failure (native/relay.h). */
const DIAL_FAILURES: readonly DialFailure[] = ["refused", "timeout", "error"];
/** Fields per record of takeAccepted(): fd, listener tag, address (errno name when fd is -1), port, localAddress, localPort. */
const ACCEPTED_FIELDS = 6;

export type DialFailure = "refused" | "timeout" | "error";

/** A connection the relay's thread accepted: its fd is the caller's until dial() (or closeFd). */
export interface Accepted {
  fd: number;
  address: string | undefined;
  port: number | undefined;
  /** Only when listen() asked for it (one getsockname per connection). */
  localAddress: string | undefined;
  localPort: number | undefined;
}

export interface RelayListener {
  accepted(a: Accepted): void;
  /** An accept that failed (EMFILE, ENFILE ...): when out of fds, the connection was closed at once. */
  refused(code: string): void;
}

/** What a connection's owner hears: its connect's outcomes (dial() only), then its end. */
export interface RelayWatcher {
  connected?(): void;
  /** The connect failed; the client waits: redial() it elsewhere, or shutdown() it. */
  dialFailed?(reason: DialFailure, code: string): void;
  done(end: RelayEnd): void;
}

export interface RelayDialOptions {
  connectTimeoutMs: number;
  idleTimeoutMs: number | null;
  /** Bytes for the target before any of the client's (a PROXY header). */
  toTarget?: Buffer;
}

export interface RelayEnd {
  reason: RelayEndReason;
  /** Client to target: bytes the relay wrote to the target, toTarget included (not what JS wrote before add()). */
  bytesIn: number;
  /** Target to client: bytes the relay wrote to the client, toClient included. */
  bytesOut: number;
  /**
   * The error that ended it ("ECONNRESET", "EPIPE", "ETIMEDOUT" ...), for client_error
   * and target_error: that side's read, write, shutdown or pending socket error.
   * "ENOMEM": no pipe and no copy buffer could be had for a read of that side.
   */
  errno?: string;
}

export interface RelayAddOptions {
  /** End the connection after this long without a byte either way and nothing still on its way; null: never. */
  idleTimeoutMs: number | null;
  /** Bytes JS already has for the target (a PROXY header, what a ClientHello peek read): sent first, in order. */
  toTarget?: Buffer;
  /** Bytes JS already has for the client: sent first, in order. */
  toClient?: Buffer;
}

export interface RelayOptions {
  /** Empty pipes kept for reuse; more are closed as they empty (default 64). */
  maxFreePipes?: number;
  /**
   * Capacity of each pipe in bytes (F_SETPIPE_SZ: a power of two, at most
   * /proc/sys/fs/pipe-max-size), which bounds what a direction holds.
   * Default: the kernel's, 64 KiB. Larger moves more per splice() (bench/tools/relay-bulk.ts);
   * a pipe the kernel refuses to grow (past the user's pipe-user-pages-soft) keeps its size.
   */
  pipeSize?: number;
  /** Tests only: every read goes through a copy buffer (recv/send), as when pipe2 fails with EMFILE. */
  forceCopy?: boolean;
}

export interface RelayStats {
  /** Connections added and not yet ended (done() may still be due for ended ones: see Relay.size). */
  open: number;
  pipesFree: number;
  /** Pipes held by directions with bytes in flight. */
  pipesBusy: number;
  /** Heap buffers held: toTarget/toClient not yet sent, copies with bytes in them. */
  buffers: number;
  /** Reads through a copy buffer instead of a pipe, since creation. */
  copyReads: number;
  /** pipe2 calls that failed (EMFILE, ENFILE ...), since creation: each made a read take the copy path. */
  pipeFailures: number;
  /** Connections accepted by the thread that JS has not taken yet. */
  acceptedWaiting: number;
  /** 1 while a listener is off epoll until JS takes what waits (the hold at 8). */
  holding: number;
}

interface NativeRelay {
  add(clientFd: number, targetFd: number, idleTimeoutMs: number, toTarget?: Buffer, toClient?: Buffer): number;
  dial(clientFd: number, host: string, port: number, connectTimeoutMs: number, idleTimeoutMs: number, toTarget?: Buffer): number;
  redial(id: number, host: string, port: number, connectTimeoutMs: number): boolean;
  listen(fd: number, wantLocal: boolean): number;
  unlisten(tag: number): boolean;
  takeAccepted(): (number | string | undefined)[];
  shutdown(id: number): void;
  shutdownAll(): void;
  close(): void;
  stats(): RelayStats;
}

interface RelayBinding {
  relayCreate(
    onEvents: (ends: Float64Array, events: Float64Array, accepted: boolean) => void,
    maxFreePipes: number,
    pipeSize: number,
    forceCopy: boolean,
    keepAliveIdleS: number,
    keepAliveIntervalS: number,
    keepAliveProbes: number,
  ): NativeRelay;
}

export const DEFAULT_MAX_FREE_PIPES = 64;

function checkIdle(idle: number | null): void {
  if (idle !== null && !(Number.isInteger(idle) && idle >= 1)) throw new RangeError(`The "idleTimeoutMs" option must be an integer >= 1 or null; got ${idle}`);
}

export class Relay {
  private readonly native: NativeRelay;
  private readonly pending = new Map<number, RelayWatcher>();
  private readonly listeners = new Map<number, RelayListener>();

  constructor(opts: RelayOptions = {}) {
    // The addon's threadsafe function holds this callback, so `this`, so `native`:
    // the native side stays alive until close() releases the function.
    this.native = (addon as unknown as RelayBinding).relayCreate(
      (ends, events, accepted) => this.delivered(ends, events, accepted),
      opts.maxFreePipes ?? DEFAULT_MAX_FREE_PIPES,
      opts.pipeSize ?? 0,
      opts.forceCopy ?? false,
      KEEPALIVE_IDLE_S,
      KEEPALIVE_INTERVAL_S,
      KEEPALIVE_PROBES,
    );
  }

  /**
   * The thread accepts on `fd` (a listening TCP socket, which stays the
   * caller's: unlisten() before closing it) and hands each connection to
   * `listener` on the JS thread. `wantLocal`: with its local address (one
   * getsockname each). Returns the tag for unlisten().
   */
  listen(fd: number, wantLocal: boolean, listener: RelayListener): number {
    const tag = this.native.listen(fd, wantLocal);
    this.listeners.set(tag, listener);
    return tag;
  }

  /** No connection is accepted on it once this returns; those accepted before are handed to its listener now. */
  unlisten(tag: number): void {
    this.native.unlisten(tag);
    this.takeAccepted();
    this.listeners.delete(tag);
  }

  /**
   * Carries a client's connection (accepted by listen(), or any connected,
   * non-blocking TCP socket) to `host` (an IP address) and `port`: the
   * thread connects, then `watcher` hears connected() or dialFailed(), and
   * done() at the end. Returns its id for redial() and shutdown().
   */
  dial(clientFd: number, host: string, port: number, opts: RelayDialOptions, watcher: RelayWatcher): number {
    checkIdle(opts.idleTimeoutMs);
    const id = this.native.dial(clientFd, host, port, opts.connectTimeoutMs, opts.idleTimeoutMs ?? -1, opts.toTarget);
    this.pending.set(id, watcher);
    return id;
  }

  /** After dialFailed(): connects the waiting client to another target. */
  redial(id: number, host: string, port: number, connectTimeoutMs: number): void {
    this.native.redial(id, host, port, connectTimeoutMs);
  }

  /**
   * Carries an established connection: the client's and the target's fds,
   * connected TCP sockets (IPv4 or IPv6). Returns its id for shutdown().
   */
  add(clientFd: number, targetFd: number, opts: RelayAddOptions, done: (end: RelayEnd) => void): number {
    checkIdle(opts.idleTimeoutMs);
    const id = this.native.add(clientFd, targetFd, opts.idleTimeoutMs ?? -1, opts.toTarget, opts.toClient);
    this.pending.set(id, { done });
    return id;
  }

  /** Closes both sockets now; done() says "shutdown". Nothing if it has already ended (or the relay is closed). */
  shutdown(id: number): void {
    this.native.shutdown(id);
  }

  /** shutdown() of every connection added so far. */
  shutdownAll(): void {
    this.native.shutdownAll();
  }

  /** Connections added whose done() has not run yet. */
  get size(): number {
    return this.pending.size;
  }

  stats(): RelayStats {
    return this.native.stats();
  }

  /**
   * Stops the thread and frees every pipe; throws ERR_RELAY_BUSY while size > 0.
   * Again: nothing. A closed relay's add() throws ERR_RELAY_CLOSED.
   */
  close(): void {
    // Also within a done(): the rest of its batch is still to be delivered.
    if (this.pending.size > 0) throw Object.assign(new Error(`relay: ${this.pending.size} connections still open`), { code: "ERR_RELAY_BUSY" });
    this.native.close();
  }

  private takeAccepted(): void {
    const records = this.native.takeAccepted();
    for (let i = 0; i + ACCEPTED_FIELDS <= records.length; i += ACCEPTED_FIELDS) {
      const fd = records[i] as number;
      const listener = this.listeners.get(records[i + 1] as number);
      if (fd < 0) {
        listener?.refused(records[i + 2] as string);
        continue;
      }
      const port = records[i + 3] as number;
      const localPort = records[i + 5] as number;
      const a: Accepted = {
        fd,
        address: records[i + 2] as string | undefined,
        port: port < 0 ? undefined : port,
        localAddress: records[i + 4] as string | undefined,
        localPort: localPort < 0 ? undefined : localPort,
      };
      if (listener) listener.accepted(a);
      else closeFd(fd);
    }
  }

  /**
   * One batch from the thread: accepted connections, connects' outcomes, then
   * ends. A callback that throws does not keep the rest of the batch from
   * being delivered; the first error is thrown as uncaught after.
   */
  private delivered(ends: Float64Array, events: Float64Array, accepted: boolean): void {
    let failed = false;
    let first: unknown;
    // Connects, then ends, then what was accepted: a new connection is routed and
    // limited on counts that include everything this batch reports.
    for (let i = 0; i + EVENT_FIELDS <= events.length; i += EVENT_FIELDS) {
      const watcher = this.pending.get(events[i + 1]!);
      try {
        if (events[i] === EVENT_CONNECTED) watcher?.connected?.();
        else watcher?.dialFailed?.(DIAL_FAILURES[events[i + 2]!]!, getSystemErrorName(-events[i + 3]!));
      } catch (e) {
        if (!failed) [failed, first] = [true, e];
      }
    }
    for (let i = 0; i + END_FIELDS <= ends.length; i += END_FIELDS) {
      const id = ends[i]!;
      const watcher = this.pending.get(id);
      this.pending.delete(id);
      const errno = ends[i + 4]!;
      const end: RelayEnd = { reason: REASONS[ends[i + 1]!]!, bytesIn: ends[i + 2]!, bytesOut: ends[i + 3]! };
      if (errno !== 0) end.errno = getSystemErrorName(-errno);
      try {
        watcher?.done(end);
      } catch (e) {
        if (!failed) [failed, first] = [true, e];
      }
    }
    if (accepted) {
      try {
        this.takeAccepted();
      } catch (e) {
        if (!failed) [failed, first] = [true, e];
      }
    }
    if (failed) process.nextTick(() => {
      throw first;
    });
  }
}
