// Named fds over a socketpair between two supervisors (an upgrade): SCM_RIGHTS
// carries at most MAX_FDS_PER_MESSAGE fds a message, each chunk a JSON line
// naming its fds.
import { setTimeout as sleep } from "node:timers/promises";
import { MAX_FDS_PER_MESSAGE } from "../../common/messages.js";
import { SwitchyardError, isSyscallError } from "../../common/errors.js";
import { closeFd, recvFds, sendFds, setRecvTimeout } from "../../native/index.js";
import type { NamedFd } from "./named-fds.js";

/** Writes every fd under its name, without ever blocking the event loop (the socket is non-blocking on this side). */
export async function sendNamedFds(sock: number, fds: readonly NamedFd[], deadline: number): Promise<void> {
  // An empty list still sends one line, so that the receiver knows it has everything.
  for (let i = 0; i === 0 || i < fds.length; i += MAX_FDS_PER_MESSAGE) {
    const chunk = fds.slice(i, i + MAX_FDS_PER_MESSAGE);
    let data = Buffer.from(JSON.stringify({ names: chunk.map((f) => f.name), last: i + MAX_FDS_PER_MESSAGE >= fds.length }) + "\n");
    let sending = chunk.map((f) => f.fd);
    while (data.length > 0) {
      try {
        const sent = sendFds(sock, data, sending);
        data = data.subarray(sent);
        sending = []; // the fds went with the first byte
      } catch (err) {
        if (!isSyscallError(err) || err.code !== "EAGAIN") throw new SwitchyardError("UPGRADE_FAILED", `hand-over of sockets failed: ${(err as Error).message}`, { cause: err });
        if (Date.now() > deadline) throw new SwitchyardError("UPGRADE_FAILED", "hand-over of sockets timed out", { cause: err });
        await sleep(2);
      }
    }
  }
}

/** Reads the fds `sendNamedFds` wrote, up to the chunk marked last; blocking, at most `timeoutMs` per read. */
export function receiveNamedFds(sock: number, timeoutMs: number): NamedFd[] {
  setRecvTimeout(sock, timeoutMs);
  const fds: number[] = [];
  const names: string[] = [];
  let text = "";
  let last = false;
  try {
    while (!last) {
      const chunk = recvFds(sock, 1 << 20, MAX_FDS_PER_MESSAGE);
      if (chunk.data.length === 0 && chunk.fds.length === 0) throw new SwitchyardError("UPGRADE_FAILED", "the previous supervisor closed the hand-over socket early");
      fds.push(...chunk.fds);
      text += chunk.data.toString("utf8");
      let nl: number;
      while ((nl = text.indexOf("\n")) >= 0) {
        const line = JSON.parse(text.slice(0, nl)) as { names: string[]; last: boolean };
        names.push(...line.names);
        last ||= line.last;
        text = text.slice(nl + 1);
      }
    }
    if (fds.length !== names.length) throw new SwitchyardError("UPGRADE_FAILED", `hand-over mismatch: ${fds.length} fds for ${names.length} names`);
  } catch (err) {
    for (const fd of fds) closeFd(fd);
    throw err;
  }
  return names.map((name, i) => ({ name, fd: fds[i]! }));
}
