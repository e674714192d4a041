import net from "node:net";
import type { Target } from "../config/plan.js";
import { KEEPALIVE_IDLE_S } from "../common/tcp-keepalive.js";

export interface ConnectFailure {
  target: Target;
  reason: "refused" | "timeout" | "error";
  code?: string;
}

/**
 * Connects to one target and calls back once, with the socket or a ConnectFailure.
 * Callbacks rather than promises: this runs for every proxied connection, and
 * the promise chain (plus its microtask hops) was a measurable share of a
 * worker's CPU under connection-per-request load.
 */
export function connectTarget(target: Target, timeoutMs: number, lookup: net.LookupFunction, done: (f: ConnectFailure | undefined, socket: net.Socket) => void): void {
  // `lookup` is used only for names: Node connects to an IP literal directly.
  const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true, lookup, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_IDLE_S * 1000 });
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
}

/** Tries the targets in order until one accepts; calls back with undefined if none does or once cancelled. */
export function connectFirst(
  targets: readonly Target[],
  timeoutMs: number,
  lookup: net.LookupFunction,
  onFailure: (f: ConnectFailure) => void,
  isCancelled: () => boolean,
  done: (connected: { socket: net.Socket; target: Target } | undefined) => void,
): void {
  let i = 0;
  const next = (): void => {
    const target = targets[i++];
    if (target === undefined || isCancelled()) return done(undefined);
    connectTarget(target, timeoutMs, lookup, (f, socket) => {
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
}
