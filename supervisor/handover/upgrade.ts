// `ctl upgrade` / SIGUSR2 on the supervisor that hands over: starts the program
// installed now as a successor, gives it every socket and the BPF state, and
// lets go only once the successor's first generation serves.
import { spawn } from "node:child_process";
import type { Logger } from "../../common/log.js";
import { Channel } from "../../common/channel.js";
import { SwitchyardError } from "../../common/errors.js";
import { closeFd, socketPair } from "../../native/index.js";
import { closeAllNamed, type NamedFd } from "./named-fds.js";
import { sendNamedFds } from "./fd-transfer.js";
import type { HandoverState } from "./handover-state.js";
import { isToPredecessor, UPGRADE_ENV, type CounterSnapshot, type ToPredecessor, type ToSuccessor } from "./upgrade-messages.js";
import type { TargetState } from "../../common/messages.js";

export interface UpgradeSource {
  /** Fresh copies of everything to hand over (sockets, BPF, control, admin, lock) and what they are for. */
  handover(): { fds: NamedFd[]; state: HandoverState };
  /** Counters so far (supervisor and every worker), for the successor to go on from. */
  counters(): Promise<CounterSnapshot>;
  targetStates(): TargetState[];
  /** How long the successor has to serve: its workers' start timeout and then some. */
  deadlineMs: number;
  log: Logger;
}

export interface Successor {
  pid: number;
  generation: number;
  /** Tells the successor it is the service's main process now. */
  becameMain(): void;
  /** Sends this supervisor's totals so far (its workers drain and count on). */
  update(metrics: CounterSnapshot): void;
  /** Sends its final totals, then closes the channel. */
  finish(metrics: CounterSnapshot): void;
}

/** The command line this process was started with: run again, it starts whatever is installed at that path now. */
function ownCommand(): { file: string; args: string[] } {
  return { file: process.execPath, args: [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)] };
}

/**
 * Starts the successor and hands over. Resolves once its first generation
 * serves; rejects (UPGRADE_FAILED) if it exits, reports a failure or misses the
 * deadline, having stopped it: this supervisor has let go of nothing.
 */
/** TERM, then KILL if it has not exited (its channel closed) within 10 s. */
function stopSuccessor(pid: number, channel: Channel): void {
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  };
  signal("SIGTERM");
  const hung = setTimeout(() => signal("SIGKILL"), 10_000).unref();
  const done = setInterval(() => {
    if (!channel.connected) {
      clearTimeout(hung);
      clearInterval(done);
    }
  }, 100).unref();
}

export async function startSuccessor(src: UpgradeSource): Promise<Successor> {
  const [chanOurs, chanTheirs] = socketPair();
  let handoffOurs: number, handoffTheirs: number;
  try {
    [handoffOurs, handoffTheirs] = socketPair();
  } catch (err) {
    closeFd(chanOurs);
    closeFd(chanTheirs);
    throw err;
  }
  const { file, args } = ownCommand();
  const started = Date.now();
  // Through a shell that starts it in the background and exits at once: the
  // successor is then the service manager's child (re-parented to it), not
  // ours, by the time we say MAINPID=. systemd marks a main process that is
  // not its child "alien", and stops one by SIGKILL without waiting for it.
  let shell;
  try {
    shell = spawn("/bin/sh", ["-c", '"$@" &', "sh", file, ...args], { stdio: ["inherit", "inherit", "inherit", chanTheirs, handoffTheirs], env: { ...process.env, [UPGRADE_ENV]: "1" } });
  } finally {
    closeFd(chanTheirs);
    closeFd(handoffTheirs);
  }
  shell.once("error", () => undefined);
  src.log.info({ event: "upgrade_started", command: [file, ...args].join(" ") });
  let log = src.log;
  let successorPid: number | undefined;

  type Outcome = Exclude<ToPredecessor, { type: "started" }> | { type: "exit" } | { type: "timeout" };
  let settle!: (m: Outcome) => void;
  const outcome = new Promise<Outcome>((resolve) => (settle = resolve));
  const channel = new Channel(chanOurs, {
    message: (m) => {
      if (!isToPredecessor(m)) return settle({ type: "failed", code: "UPGRADE_FAILED", message: `unexpected message from the successor: ${JSON.stringify(m).slice(0, 200)}` });
      if (m.type !== "started") return settle(m);
      successorPid = m.pid;
      log = src.log.child({ successor_pid: m.pid });
    },
    invalid: (reason) => settle({ type: "failed", code: "UPGRADE_FAILED", message: `the successor wrote ${reason}` }),
    // Its end of the channel closes when it exits (nothing else holds it): a "failed" it wrote first has been read.
    close: () => settle({ type: "exit" }),
  });
  const timer = setTimeout(() => settle({ type: "timeout" }), src.deadlineMs);

  let handed: NamedFd[] = [];
  try {
    const h = src.handover();
    handed = h.fds;
    await sendNamedFds(handoffOurs, handed, Date.now() + src.deadlineMs);
    const hello: ToSuccessor = { type: "handover", state: h.state, metrics: await src.counters(), targetStates: src.targetStates(), predecessorPid: process.pid };
    channel.send(hello);
  } catch (err) {
    settle({ type: "failed", code: "UPGRADE_FAILED", message: (err as Error).message });
  } finally {
    closeAllNamed(handed);
  }

  const result = await outcome;
  clearTimeout(timer);
  closeFd(handoffOurs);
  if (result.type === "serving") {
    log.info({ event: "upgrade_handed_over", generation: result.generation, duration_ms: Date.now() - started });
    return {
      pid: result.pid,
      generation: result.generation,
      becameMain: () => channel.send({ type: "main" } satisfies ToSuccessor),
      update: (metrics) => channel.send({ type: "totals", metrics } satisfies ToSuccessor),
      finish: (metrics) => {
        // Nothing to report (its totals could not be read): the last ones sent stand.
        if (metrics.length > 0) channel.send({ type: "totals", metrics } satisfies ToSuccessor);
        channel.close();
      },
    };
  }
  const reason =
    result.type === "exit" ? "the new supervisor exited before it served"
    : result.type === "timeout" ? `the new supervisor did not serve within ${src.deadlineMs} ms`
    : `the new supervisor failed: ${result.code}: ${result.message}`;
  // It stops its own workers on TERM, and never detaches what it was handed.
  if (successorPid !== undefined && result.type !== "exit") stopSuccessor(successorPid, channel);
  else channel.close();
  log.error({ event: "upgrade_failed", reason });
  throw new SwitchyardError("UPGRADE_FAILED", `${reason}; this supervisor (pid ${process.pid}) keeps serving`);
}
