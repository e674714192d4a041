// The successor's side of an upgrade: what the predecessor handed over, and
// the channel to tell it when this supervisor serves (or why it cannot).
import type { Logger } from "../../common/log.js";
import { Channel } from "../../common/channel.js";
import { SwitchyardError } from "../../common/errors.js";
import { closeFd, dupFd } from "../../native/index.js";
import { receiveNamedFds } from "./fd-transfer.js";
import { parseHandoverState } from "./handover-state.js";
import { sortInheritance, type Inheritance } from "./inheritance.js";
import { isToSuccessor, UPGRADE_CHANNEL_FD, UPGRADE_ENV, UPGRADE_HANDOFF_FD, type CounterSnapshot, type ToPredecessor } from "./upgrade-messages.js";
import type { TargetState } from "../../common/messages.js";

/** How long the predecessor has to send everything once this process runs. */
const HANDOVER_TIMEOUT_MS = 10_000;

export interface Predecessor {
  pid: number;
  inheritance: Inheritance;
  counters: CounterSnapshot;
  targetStates: TargetState[];
  serving(generation: number): void;
  failed(err: SwitchyardError): Promise<void>;
  /** Resolves when the predecessor says this process is the service's main one, or has gone. */
  readonly main: Promise<void>;
  /** Resolves once the predecessor has exited (its channel closed): its workers are gone too. */
  readonly gone: Promise<void>;
  /** Called with the predecessor's totals as its workers drain, the last time once they have exited. */
  onTotals: (metrics: CounterSnapshot) => void;
}

export function isUpgrade(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[UPGRADE_ENV] === "1";
}

/** Receives the hand-over; throws UPGRADE_FAILED (the predecessor then keeps serving). */
export async function receiveHandover(log: Logger): Promise<Predecessor> {
  delete process.env[UPGRADE_ENV];
  // Inherited without close-on-exec: moved, so that no worker inherits them.
  const channelFd = dupFd(UPGRADE_CHANNEL_FD);
  closeFd(UPGRADE_CHANNEL_FD);
  const handoffFd = dupFd(UPGRADE_HANDOFF_FD);
  closeFd(UPGRADE_HANDOFF_FD);
  let onMain!: () => void;
  const main = new Promise<void>((resolve) => (onMain = resolve));
  let onGone!: () => void;
  const gone = new Promise<void>((resolve) => (onGone = resolve));
  let hello: (value: unknown) => void = () => undefined;
  const first = new Promise<unknown>((resolve) => (hello = resolve));
  const pred: Partial<Predecessor> & { onTotals: (m: CounterSnapshot) => void } = { onTotals: () => undefined };
  const channel = new Channel(channelFd, {
    message: (m) => {
      if (!isToSuccessor(m)) return log.error({ event: "upgrade_protocol_error", message: JSON.stringify(m).slice(0, 200) });
      if (m.type === "handover") hello(m);
      else if (m.type === "main") onMain();
      else pred.onTotals(m.metrics);
    },
    invalid: (reason) => log.error({ event: "upgrade_protocol_error", reason }),
    // The predecessor has exited (or died): this one is on its own, and the service's now.
    close: () => {
      hello(undefined);
      onMain();
      onGone();
    },
  });
  channel.send({ type: "started", pid: process.pid } satisfies ToPredecessor);
  const timer = setTimeout(() => hello(undefined), HANDOVER_TIMEOUT_MS);
  const msg = (await first) as { state: unknown; metrics: CounterSnapshot; targetStates: TargetState[]; predecessorPid: number } | undefined;
  clearTimeout(timer);
  const send = (m: ToPredecessor): Promise<void> => new Promise((resolve) => channel.send(m, resolve));
  const fail = async (message: string): Promise<never> => {
    await send({ type: "failed", code: "UPGRADE_FAILED", message });
    channel.close();
    throw new SwitchyardError("UPGRADE_FAILED", message);
  };
  let fds;
  let state;
  try {
    if (msg === undefined) return await fail("no hand-over from the previous supervisor");
    state = parseHandoverState(msg.state);
    if (typeof state === "string") return await fail(`hand-over state unusable: ${state}`);
    try {
      fds = receiveNamedFds(handoffFd, HANDOVER_TIMEOUT_MS);
    } catch (err) {
      return await fail((err as Error).message);
    }
  } finally {
    closeFd(handoffFd);
  }
  const inheritance = sortInheritance("upgrade", fds, state, log);
  log.info({ event: "upgrade_received", predecessor_pid: msg.predecessorPid, fds: fds.length, mode: state.mode, generation: inheritance.generation });
  return Object.assign(pred, {
    pid: msg.predecessorPid,
    inheritance,
    counters: msg.metrics,
    targetStates: msg.targetStates,
    main,
    gone,
    serving: (generation: number) => void send({ type: "serving", pid: process.pid, generation }),
    failed: (err: SwitchyardError) => send({ type: "failed", code: err.code, message: err.message }),
  }) as Predecessor;
}
