// Which foreign listener a new BPF port binding would rob. Ports mode learns of a
// busy port from bind()'s EADDRINUSE; BPF mode binds nothing, and its sk_lookup
// program runs before the kernel's listener lookup, so without this check it
// would silently take the port from the process listening there (or from our own
// admin listener, or send a worker's upstream connection back to the proxy).
import { prefixContains, type Prefix } from "../../config/addresses.js";
import type { ListeningSocket } from "./listening-sockets.js";

/** Whether connections to (an address in `p`, the socket's port) would have reached `s`. */
function reaches(s: ListeningSocket, p: Prefix): boolean {
  if (s.address === "0.0.0.0" || s.address === "::ffff:0.0.0.0") return p.family === 4;
  // Dual-stack unless IPV6_V6ONLY, which /proc does not show: assume both families.
  if (s.address === "::") return true;
  return prefixContains(p, s.address);
}

/** Listeners by port, built once per prepare so each binding costs one Map lookup. */
export class ListenerIndex {
  private readonly byPort = new Map<number, ListeningSocket[]>();

  /** `ours`: inodes of our own app sockets, which listen on ephemeral ports that a config may well include. */
  constructor(sockets: Iterable<ListeningSocket>, ours: ReadonlySet<number>) {
    for (const s of sockets) {
      if (ours.has(s.inode)) continue;
      const list = this.byPort.get(s.port);
      if (list) list.push(s);
      else this.byPort.set(s.port, [s]);
    }
  }

  /** The listener steering (prefix, port) would take connections from, if any. */
  robbed(prefix: Prefix, port: number): ListeningSocket | undefined {
    return this.byPort.get(port)?.find((s) => reaches(s, prefix));
  }
}

const SHOWN = 3;

/** Collects conflicts and words them like ports mode's bind() failure, a few named, the rest counted. */
export class ConflictReport {
  private readonly seen = new Set<string>();
  private readonly shown: string[] = [];

  add(s: ListeningSocket, app: string): void {
    const what = `${s.key} (app ${app})`;
    if (this.seen.has(what)) return;
    this.seen.add(what);
    if (this.shown.length < SHOWN) this.shown.push(what);
  }

  get empty(): boolean {
    return this.seen.size === 0;
  }

  message(): string {
    const [first, ...also] = this.shown;
    const rest = this.seen.size - this.shown.length;
    return (
      `cannot listen on ${first}: EADDRINUSE (another socket listens there)` +
      (also.length > 0 ? `; also ${also.join(", ")}` : "") +
      (rest > 0 ? ` and ${rest} more` : "")
    );
  }
}
