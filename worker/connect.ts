import net from "node:net";
import type { Target } from "../config/plan.js";
import { KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES } from "../common/tcp-keepalive.js";
import { setKeepAlive } from "../native/index.js";
import { socketFd } from "../common/socket-fd.js";

/**
 * The target leg gets the client leg's keepalive timings (which come from the
 * listening socket). Node's own keepAlive option sets only the idle time and
 * leaves libuv's 1 s x 10 probes: a 10 s network blip would end the connection.
 */
function keepAlive(socket: net.Socket): void {
  const fd = socketFd(socket);
  try {
    if (fd !== undefined) setKeepAlive(fd, KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES);
  } catch {
    // The socket failed between connect and here: its error event ends the connection.
  }
}

export interface ConnectFailure {
  target: Target;
  reason: "refused" | "timeout" | "error";
  code?: string;
}

/** Gives up a dial in progress: its socket closed, its callback never called. */
export type AbortDial = () => void;

/**
 * Connects to one target and calls back once, with the socket or a ConnectFailure.
 * Callbacks rather than promises: this runs for every proxied connection, and
 * the promise chain (plus its microtask hops) was a measurable share of a
 * worker's CPU under connection-per-request load.
 */
export function connectTarget(target: Target, timeoutMs: number, lookup: net.LookupFunction, done: (f: ConnectFailure | undefined, socket: net.Socket) => void): AbortDial {
  // `lookup` is used only for names: Node connects to an IP literal directly.
  const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true, lookup });
  const onTimeout = (): void => {
    socket.removeListener("connect", onConnect);
    socket.removeListener("error", onError);
    socket.destroy();
    done({ target, reason: "timeout" }, socket);
  };
  const timer = setTimeout(onTimeout, timeoutMs);
  const onConnect = (): void => {
    clearTimeout(timer);
    socket.removeListener("error", onError);
    keepAlive(socket);
    done(undefined, socket);
  };
  const onError = (err: NodeJS.ErrnoException): void => {
    clearTimeout(timer);
    socket.removeListener("connect", onConnect);
    socket.destroy();
    done({ target, reason: err.code === "ECONNREFUSED" ? "refused" : "error", code: err.code }, socket);
  };
  socket.once("connect", onConnect);
  socket.once("error", onError);
  return () => {
    clearTimeout(timer);
    socket.removeListener("connect", onConnect);
    socket.removeListener("error", onError);
    socket.destroy();
  };
}

/**
 * Tries the targets in order until one accepts; calls back with undefined if
 * none does or once cancelled. The AbortDial returned gives up the attempt in
 * progress at once (its fd freed, not held until ConnectTimeoutMs) and calls
 * back with undefined.
 */
export function connectFirst(
  targets: readonly Target[],
  timeoutMs: number,
  lookup: net.LookupFunction,
  onFailure: (f: ConnectFailure) => void,
  isCancelled: () => boolean,
  done: (connected: { socket: net.Socket; target: Target } | undefined) => void,
): AbortDial {
  let i = 0;
  let abortAttempt: AbortDial | undefined;
  const next = (): void => {
    abortAttempt = undefined;
    const target = targets[i++];
    if (target === undefined || isCancelled()) return done(undefined);
    abortAttempt = connectTarget(target, timeoutMs, lookup, (f, socket) => {
      abortAttempt = undefined;
      if (f) {
        onFailure(f);
        return next();
      }
      if (isCancelled()) {
        socket.destroy();
        return done(undefined);
      }
      done({ socket, target });
    });
  };
  next();
  return () => {
    if (abortAttempt === undefined) return;
    abortAttempt();
    abortAttempt = undefined;
    done(undefined);
  };
}
