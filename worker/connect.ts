import net from "node:net";
import type { Target } from "../config/plan.js";

export interface ConnectFailure {
  target: Target;
  reason: "refused" | "timeout" | "error";
  code?: string;
}

/** Connects to one target; resolves with the socket or rejects with a ConnectFailure. */
export function connectTarget(target: Target, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject({ target, reason: "timeout" } satisfies ConnectFailure);
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject({ target, reason: err.code === "ECONNREFUSED" ? "refused" : "error", code: err.code } satisfies ConnectFailure);
    });
  });
}

/** Tries the targets in order until one accepts. */
export async function connectFirst(
  targets: readonly Target[],
  timeoutMs: number,
  onFailure: (f: ConnectFailure) => void,
  isCancelled: () => boolean,
): Promise<{ socket: net.Socket; target: Target } | undefined> {
  for (const target of targets) {
    if (isCancelled()) return undefined;
    try {
      const socket = await connectTarget(target, timeoutMs);
      if (isCancelled()) {
        socket.destroy();
        return undefined;
      }
      return { socket, target };
    } catch (f) {
      onFailure(f as ConnectFailure);
    }
  }
  return undefined;
}
