// A small service manager for tests, standing in for systemd (Type=notify,
// NotifyAccess=main, FileDescriptorStoreMax=, Restart=on-failure, KillMode=process)
// by the protocol systemd documents (sd_notify(3), sd_listen_fds(3)):
//  - a datagram socket at $NOTIFY_SOCKET takes READY=1, STOPPING=1, MAINPID=,
//    FDSTORE=1 with FDNAME= and fds, FDSTOREREMOVE=1; only from the main pid;
//  - when the main process dies without being asked to stop, it is started again
//    with the stored fds as LISTEN_FDS (from fd 3), LISTEN_FDNAMES, LISTEN_PID;
//  - the rest of the old process's group is left alone (KillMode=process).
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { closeFd, recvDatagram, unixDgramSocket } from "../../native/index.js";
import { cli, tempDir, type LogLine } from "./supervisor.js";

export interface ManagerOptions {
  /** Arguments after `switchyard run`. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** RestartSec=. */
  restartDelayMs?: number;
  /** FileDescriptorStoreMax=. */
  fdStoreMax?: number;
  /** A socket unit's listening sockets: passed first on every start, under their FileDescriptorName=. */
  sockets?: { name: string; fd: number }[];
}

interface Stored {
  name: string;
  fd: number;
}

export class ServiceManager {
  readonly dir = tempDir("switchyard-manager-");
  readonly notifyPath = path.join(this.dir, "notify.sock");
  readonly logs: LogLine[] = [];
  /** Every notification accepted, with the pid it came from. */
  readonly notifications: { pid: number; fields: Map<string, string> }[] = [];
  /** Notifications from another pid than the main one: refused, as NotifyAccess=main does. */
  readonly refused: { pid: number; text: string }[] = [];
  readonly starts: { pid: number; listenFds: string[] }[] = [];
  mainPid = 0;
  private readonly store: Stored[] = [];
  private readonly socket: number;
  private readonly poll: NodeJS.Timeout;
  private readonly watch: NodeJS.Timeout;
  private stopping = false;
  private children = new Set<ChildProcess>();
  private waiters: { match: (l: LogLine) => boolean; from: number; resolve: (l: LogLine) => void }[] = [];

  constructor(private opts: ManagerOptions) {
    this.socket = unixDgramSocket(this.notifyPath);
    this.poll = setInterval(() => this.receive(), 2);
    // The main process may not be our child (MAINPID= after an upgrade): watched through /proc.
    this.watch = setInterval(() => this.checkMain(), 10);
  }

  /**
   * An edit of ExecStart= and `systemctl daemon-reload`: the next start runs
   * with `args`. The fd store is kept, as systemd keeps it across a restart
   * (FileDescriptorStorePreserve=restart, its default).
   */
  setArgs(args: string[]): void {
    this.opts = { ...this.opts, args };
  }

  /** Starts the service (ExecStart) with whatever the store holds. */
  start(): void {
    const fds = [...(this.opts.sockets ?? []), ...this.store];
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.opts.env, NOTIFY_SOCKET: this.notifyPath };
    if (fds.length > 0) {
      env.LISTEN_FDS = String(fds.length);
      env.LISTEN_FDNAMES = fds.map((f) => f.name).join(":");
    }
    // LISTEN_PID must be the service's own pid, known only once it runs: the shell that execs it has it.
    const script = fds.length > 0 ? 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"' : 'exec "$@"';
    const child = spawn("sh", ["-c", script, "sh", process.execPath, cli, "run", ...this.opts.args], {
      stdio: ["ignore", "pipe", "pipe", ...fds.map((f) => f.fd)],
      env,
    });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    this.mainPid = child.pid!;
    this.starts.push({ pid: child.pid!, listenFds: fds.map((f) => f.name) });
    this.follow(child);
  }

  /** Resolves with the first log line from now on (or from `from`) matching. */
  waitFor(match: (l: LogLine) => boolean, timeoutMs = 20_000, from = this.logs.length): Promise<LogLine> {
    const seen = this.logs.slice(from).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line; last: ${this.logs.slice(-5).map((l) => JSON.stringify(l)).join("\n")}`)), timeoutMs);
      this.waiters.push({ match, from, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }

  /** Names in the fd store now. */
  storedNames(): string[] {
    return this.store.map((s) => s.name);
  }

  /** `systemctl stop`: TERM to the main process, wait for it; the store is emptied. */
  async stop(): Promise<void> {
    this.stopping = true;
    const pid = this.mainPid;
    if (pid !== 0 && alive(pid)) {
      process.kill(pid, "SIGTERM");
      for (const until = Date.now() + 30_000; alive(pid) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
      if (alive(pid)) process.kill(pid, "SIGKILL");
    }
    clearInterval(this.poll);
    clearInterval(this.watch);
    for (const s of this.store.splice(0)) closeFd(s.fd);
    closeFd(this.socket);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private follow(child: ChildProcess): void {
    let partial = "";
    child.stderr!.resume();
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop()!;
      for (const text of lines) {
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          continue;
        }
        this.logs.push(line);
        for (const w of [...this.waiters]) {
          if (this.logs.indexOf(line) >= w.from && w.match(line)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    });
  }

  private checkMain(): void {
    if (this.stopping || this.mainPid === 0 || alive(this.mainPid)) return;
    // Restart=on-failure: the main process went away without a stop.
    this.mainPid = 0;
    setTimeout(() => {
      if (!this.stopping) this.start();
    }, this.opts.restartDelayMs ?? 100);
  }

  private receive(): void {
    for (;;) {
      let d;
      try {
        d = recvDatagram(this.socket, 65536, 253);
      } catch {
        continue;
      }
      if (d === null) return;
      const text = d.data.toString("utf8");
      if (d.pid !== this.mainPid) {
        this.refused.push({ pid: d.pid, text });
        for (const fd of d.fds) closeFd(fd);
        continue;
      }
      const fields = new Map(text.split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as [string, string]));
      this.notifications.push({ pid: d.pid, fields });
      const name = fields.get("FDNAME") ?? "stored";
      if (fields.get("FDSTOREREMOVE") === "1") {
        for (let i = this.store.length - 1; i >= 0; i--) if (this.store[i]!.name === name) closeFd(this.store.splice(i, 1)[0]!.fd);
        for (const fd of d.fds) closeFd(fd);
      } else if (fields.get("FDSTORE") === "1") {
        for (const fd of d.fds) {
          if (this.store.length < (this.opts.fdStoreMax ?? 16384)) this.store.push({ name, fd });
          else closeFd(fd);
        }
      } else {
        for (const fd of d.fds) closeFd(fd);
      }
      const main = Number(fields.get("MAINPID"));
      if (Number.isInteger(main) && main > 0) this.mainPid = main;
    }
  }
}

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}
