import type net from "node:net";
import { isReset, pendingBytes } from "../native/index.js";
import { socketFd } from "../common/socket-fd.js";

// What the kernel knows of a Node socket that Node does not say: for the JS
// data path's idle timer and its paused legs (worker/proxy.ts).

/** Whether bytes written to `socket` have yet to reach its peer. Read only when an idle timer fires. */
export function stillSending(socket: net.Socket): boolean {
  if (socket.writableLength > 0) return true;
  const fd = socketFd(socket);
  try {
    return fd !== undefined && pendingBytes(fd) > 0;
  } catch {
    return false;
  }
}

/**
 * A leg paused by backpressure is not read, so the kernel's news of its peer's
 * reset reaches no one: it is asked for this often while the leg stays paused.
 */
export const PAUSED_CHECK_MS = 1000;

/** Whether the kernel has closed `socket`'s connection (a reset), though nothing reads it. */
export function resetUnread(socket: net.Socket): boolean {
  const fd = socketFd(socket);
  try {
    return fd !== undefined && isReset(fd);
  } catch {
    return false;
  }
}
