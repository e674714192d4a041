import type net from "node:net";
import { closeFd, dupFd } from "../native/index.js";
import { socketFd } from "../common/socket-fd.js";
import type { Relay, RelayEnd } from "../native/relay.js";

/**
 * Gives an established connection's two sockets to the native relay: their
 * fds duplicated, the Node sockets closed (the kernel's connections live on
 * in the duplicates), the PROXY header for the target and then what Node
 * already read from the client (after a PROXY header, a ClientHello peek)
 * sent first. Returns the relay's id, which `done` reports the end of; or
 * undefined when the relay cannot take it (out of fds or memory), with both
 * sockets as they were, for Node streams to carry.
 */
export function handOverToRelay(
  relay: Relay,
  client: net.Socket,
  upstream: net.Socket,
  opts: { idleTimeoutMs: number | null; header: Buffer | undefined },
  done: (end: RelayEnd) => void,
): number | undefined {
  const clientFd = socketFd(client);
  const targetFd = socketFd(upstream);
  if (clientFd === undefined || targetFd === undefined) return undefined;
  let fds: [number, number];
  try {
    const c = dupFd(clientFd);
    try {
      fds = [c, dupFd(targetFd)];
    } catch (err) {
      closeFd(c);
      throw err;
    }
  } catch {
    return undefined;
  }
  // Paused since accept: what is buffered is all Node read, and it reads nothing more before the sockets close.
  const early: Buffer[] = [];
  for (let chunk: Buffer | null; (chunk = client.read() as Buffer | null) !== null; ) early.push(chunk);
  const first = opts.header === undefined ? early : [opts.header, ...early];
  let id: number;
  try {
    id = relay.add(fds[0], fds[1], { idleTimeoutMs: opts.idleTimeoutMs, toTarget: first.length === 0 ? undefined : Buffer.concat(first) }, done);
  } catch {
    closeFd(fds[0]);
    closeFd(fds[1]);
    for (const chunk of early.reverse()) client.unshift(chunk);
    return undefined;
  }
  client.destroy();
  upstream.destroy();
  return id;
}
