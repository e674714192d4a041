// Typed facade over the relay (native/relay*.c): established TCP connections
// carried by an epoll thread of the addon's, with splice() through pipes,
// while JS keeps accept, routing, connect, limits and the access log.
//
// One Relay per process. add() takes over both sockets' fds (dup them from
// the net.Socket, then destroy it: common/socket-fd.ts, dupFd) and closes them
// when the connection ends; done() then runs once, on the JS thread, never
// within add(). A failing add() throws a SyscallError and leaves both fds open
// and the caller's, to carry the connection the JS way instead.
import { getSystemErrorName } from "node:util";

import { addon } from "./index.js";

export type RelayEndReason = "closed" | "client_error" | "target_error" | "idle_timeout" | "shutdown";

/** Indexed by enum relay_reason (native/relay.h). */
const REASONS: readonly RelayEndReason[] = ["closed", "client_error", "target_error", "idle_timeout", "shutdown"];

/** Fields per connection in a batch from the addon: id, reason, bytesIn, bytesOut, errno. */
const END_FIELDS = 5;

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
}

interface NativeRelay {
  add(clientFd: number, targetFd: number, idleTimeoutMs: number, toTarget?: Buffer, toClient?: Buffer): number;
  shutdown(id: number): void;
  shutdownAll(): void;
  close(): void;
  stats(): RelayStats;
}

interface RelayBinding {
  relayCreate(onEnds: (ends: Float64Array) => void, maxFreePipes: number, pipeSize: number, forceCopy: boolean): NativeRelay;
}

export const DEFAULT_MAX_FREE_PIPES = 64;

export class Relay {
  private readonly native: NativeRelay;
  private readonly pending = new Map<number, (end: RelayEnd) => void>();

  constructor(opts: RelayOptions = {}) {
    // The addon's threadsafe function holds this callback, so `this`, so `native`:
    // the native side stays alive until close() releases the function.
    this.native = (addon as unknown as RelayBinding).relayCreate(
      (ends) => this.ended(ends),
      opts.maxFreePipes ?? DEFAULT_MAX_FREE_PIPES,
      opts.pipeSize ?? 0,
      opts.forceCopy ?? false,
    );
  }

  /**
   * Carries an established connection: the client's and the target's fds,
   * connected TCP sockets (IPv4 or IPv6). Returns its id for shutdown().
   */
  add(clientFd: number, targetFd: number, opts: RelayAddOptions, done: (end: RelayEnd) => void): number {
    const idle = opts.idleTimeoutMs;
    if (idle !== null && !(Number.isInteger(idle) && idle >= 1)) throw new RangeError(`The "idleTimeoutMs" option must be an integer >= 1 or null; got ${idle}`);
    const id = this.native.add(clientFd, targetFd, idle ?? -1, opts.toTarget, opts.toClient);
    this.pending.set(id, done);
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

  private ended(ends: Float64Array): void {
    let failed = false;
    let first: unknown;
    for (let i = 0; i + END_FIELDS <= ends.length; i += END_FIELDS) {
      const id = ends[i]!;
      const done = this.pending.get(id);
      this.pending.delete(id);
      const errno = ends[i + 4]!;
      const end: RelayEnd = { reason: REASONS[ends[i + 1]!]!, bytesIn: ends[i + 2]!, bytesOut: ends[i + 3]! };
      if (errno !== 0) end.errno = getSystemErrorName(-errno);
      try {
        done?.(end);
      } catch (e) {
        // The rest of the batch still gets its done(); the first error is thrown as uncaught after.
        if (!failed) first = e;
        failed = true;
      }
    }
    if (failed) process.nextTick(() => {
      throw first;
    });
  }
}
