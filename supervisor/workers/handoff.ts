import { setTimeout as sleep } from "node:timers/promises";
import { MAX_FDS_PER_MESSAGE } from "../../common/messages.js";
import { SwitchyardError, isSyscallError } from "../../common/errors.js";
import { sendFds } from "../../native/index.js";

export interface OutgoingListener {
  key: string;
  fd: number;
}

/**
 * Writes the listening fds to a worker's hand-over socket, at most
 * MAX_FDS_PER_MESSAGE per message, each chunk a JSON line naming its
 * listeners. The socket is non-blocking on this side: when the worker is slow
 * to read, we wait without ever blocking the supervisor's event loop.
 */
export async function sendListeners(sock: number, listeners: readonly OutgoingListener[], deadline: number): Promise<void> {
  for (let i = 0; i < listeners.length; i += MAX_FDS_PER_MESSAGE) {
    const chunk = listeners.slice(i, i + MAX_FDS_PER_MESSAGE);
    let data = Buffer.from(JSON.stringify({ keys: chunk.map((l) => l.key) }) + "\n");
    let fds = chunk.map((l) => l.fd);
    while (data.length > 0) {
      try {
        const sent = sendFds(sock, data, fds);
        data = data.subarray(sent);
        fds = []; // the fds went with the first byte
      } catch (err) {
        if (!isSyscallError(err) || err.code !== "EAGAIN") {
          throw new SwitchyardError("HANDOFF_FAILED", `hand-over to worker failed: ${(err as Error).message}`, { cause: err });
        }
        if (Date.now() > deadline) throw new SwitchyardError("HANDOFF_FAILED", "hand-over to worker timed out", { cause: err });
        await sleep(2);
      }
    }
  }
}
