import { HANDOFF_FD, MAX_FDS_PER_MESSAGE, type ListenerSpec } from "../common/messages.js";
import { SwitchyardError } from "../common/errors.js";
import { closeFd, recvFds, setRecvTimeout, socketInode } from "../native/index.js";

const HANDOFF_TIMEOUT_MS = 5000;

export interface ReceivedListener {
  spec: ListenerSpec;
  fd: number;
  inode: number;
}

/**
 * Takes the listening fds the supervisor sent on the hand-over socket, in
 * chunks (SCM_RIGHTS carries at most 253 fds a message), each chunk a JSON line
 * naming its listeners. The supervisor writes them all before it sends
 * "start", so they are already queued; the timeout only guards against a broken supervisor.
 */
export function receiveListeners(specs: readonly ListenerSpec[]): ReceivedListener[] {
  if (specs.length === 0) return [];
  setRecvTimeout(HANDOFF_FD, HANDOFF_TIMEOUT_MS);
  const fds: number[] = [];
  const keys: string[] = [];
  let text = "";
  try {
    while (keys.length < specs.length || fds.length < specs.length) {
      const chunk = recvFds(HANDOFF_FD, 1 << 20, MAX_FDS_PER_MESSAGE);
      if (chunk.data.length === 0 && chunk.fds.length === 0) throw new SwitchyardError("HANDOFF_FAILED", "hand-over socket closed early");
      fds.push(...chunk.fds);
      text += chunk.data.toString("utf8");
      let nl: number;
      while ((nl = text.indexOf("\n")) >= 0) {
        keys.push(...(JSON.parse(text.slice(0, nl)) as { keys: string[] }).keys);
        text = text.slice(nl + 1);
      }
      if (fds.length > specs.length || keys.length > specs.length) break;
    }
    const mismatch = fds.length !== specs.length || specs.some((s, i) => keys[i] !== s.key);
    if (mismatch) {
      throw new SwitchyardError("HANDOFF_FAILED", `hand-over mismatch: expected ${specs.length} listeners, got ${fds.length} fds for ${keys.length} keys`);
    }
  } catch (err) {
    for (const fd of fds) closeFd(fd);
    throw err;
  }
  return specs.map((spec, i) => ({ spec, fd: fds[i]!, inode: socketInode(fds[i]!) }));
}
