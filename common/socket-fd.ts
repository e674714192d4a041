import type net from "node:net";

/** The fd under a Node socket (libuv's handle), for the native calls Node has no API for; undefined once closed. */
export function socketFd(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return fd !== undefined && fd >= 0 ? fd : undefined;
}

/** The fd a Node server listens on; undefined once closed. */
export function serverFd(server: net.Server): number | undefined {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return fd !== undefined && fd >= 0 ? fd : undefined;
}
