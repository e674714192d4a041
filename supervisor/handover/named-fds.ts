// The fds a supervisor hands on (to the next one in an upgrade, to systemd's fd
// store against a crash), each under a name that says what it is for.
import { closeFd, dupFd } from "../../native/index.js";

export interface NamedFd {
  name: string;
  fd: number;
  /** Passed by systemd on every start anyway (a socket unit's): never put in the fd store. */
  external?: boolean;
}

/**
 * Names: the same in an upgrade's hand-over and in systemd's fd store, where
 * FDNAME= allows at most 255 characters and no ':'.
 *   tcp-<address>-<port>    ports mode, a listening socket (the address with ':' as '_')
 *   app-<slot>              BPF mode, the listening socket of the app in that sockmap slot
 *   bpf-link, bpf-sockets, bpf-ports, bpf-counters   BPF mode, the sk_lookup link and maps
 *   state                   a memfd: what the fds are for, beyond their names (handover-state.ts)
 *   control, admin, lock    upgrade only: the control and admin sockets, the runtime dir's lock
 *   counters                upgrade only: the memfd of the MaxConnections table
 * Anything else (a socket unit's FileDescriptorName=) is taken for a listening socket
 * and matched to the config by its address and port.
 */
export const FD_NAMES = {
  state: "state",
  control: "control",
  admin: "admin",
  lock: "lock",
  counters: "counters",
  bpfLink: "bpf-link",
  bpfSockets: "bpf-sockets",
  bpfPorts: "bpf-ports",
  bpfCounters: "bpf-counters",
} as const;

/** FDNAME of a ports-mode listener: "127.0.0.1:7777" → "tcp-127.0.0.1-7777", "[::]:7777" → "tcp-__-7777". */
export function listenerFdName(key: string): string {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(key);
  if (!m) throw new Error(`not a listener key: ${key}`);
  return `tcp-${m[1]!.replace(/:/g, "_")}-${m[2]}`;
}

/** Whether a listener's name is one this supervisor gives (not a socket unit's FileDescriptorName=). */
export function isOwnListenerName(name: string): boolean {
  return name.startsWith("tcp-");
}

export function appFdName(slot: number): string {
  return `app-${slot}`;
}

export function appSlotOf(name: string): number | undefined {
  const m = /^app-(\d{1,4})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** systemd's FDNAME rules: 1-255 printable ASCII characters, no ':'. */
export function validFdName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && /^[\x21-\x7e]+$/.test(name) && !name.includes(":");
}

/** First fd of LISTEN_FDS (SD_LISTEN_FDS_START). */
const LISTEN_FDS_START = 3;

/**
 * The fds systemd passed (sd_listen_fds(3)): LISTEN_PID must be this process,
 * LISTEN_FDS their count from fd 3, LISTEN_FDNAMES their names (':'-separated).
 * The variables are removed either way, so that no worker takes them for its
 * own. Fds passed to another pid are not ours to use: an empty list. systemd
 * passes them without close-on-exec: each is moved to a close-on-exec copy,
 * or every worker would inherit every one of them.
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env): NamedFd[] {
  const pid = env.LISTEN_PID;
  const count = env.LISTEN_FDS;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid === undefined || count === undefined || Number(pid) !== process.pid) return [];
  const n = Number(count);
  if (!Number.isInteger(n) || n <= 0 || n > 1 << 20) return [];
  const nameList = names === undefined ? [] : names.split(":");
  const out: NamedFd[] = [];
  for (let i = 0; i < n; i++) {
    const fd = LISTEN_FDS_START + i;
    try {
      out.push({ fd: dupFd(fd), name: nameList[i] || "unknown" });
    } catch {
      // Not open (a miscounted LISTEN_FDS): nothing to take.
      continue;
    }
    closeFd(fd);
  }
  return out;
}

export function closeAllNamed(fds: Iterable<NamedFd>): void {
  for (const { fd } of fds) {
    try {
      closeFd(fd);
    } catch {
      // Already closed: nothing held.
    }
  }
}
