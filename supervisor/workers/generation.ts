import type { Plan } from "../../config/plan.js";
import type { PreparedListeners } from "../listeners/listener-provider.js";
import type { WorkerProcess } from "./worker-process.js";

export type GenerationState = "starting" | "serving" | "draining" | "stopped";

const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that served this long before dying starts its slot's backoff afresh. */
const STABLE_AFTER_MS = 10_000;

interface Slot {
  worker: WorkerProcess | undefined;
  restarts: number;
  consecutiveFailures: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/** One set of workers started from one Plan, with the sockets handed to them. */
export class Generation {
  state: GenerationState = "starting";
  readonly startedAt = Date.now();
  drainingSince: number | undefined;
  readonly slots: Slot[];

  constructor(readonly number: number, readonly plan: Plan, readonly prepared: PreparedListeners, size: number) {
    this.slots = Array.from({ length: size }, () => ({ worker: undefined, restarts: 0, consecutiveFailures: 0, restartTimer: undefined }));
  }

  workers(): WorkerProcess[] {
    return this.slots.flatMap((s) => (s.worker ? [s.worker] : []));
  }

  allServing(): boolean {
    return this.slots.every((s) => s.worker?.state === "serving");
  }

  /** Delay before the slot's next restart; grows with consecutive failures. */
  restartDelay(index: number, servedMs: number): number {
    const slot = this.slots[index]!;
    if (servedMs >= STABLE_AFTER_MS) slot.consecutiveFailures = 0;
    const delay = Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** slot.consecutiveFailures);
    slot.consecutiveFailures += 1;
    slot.restarts += 1;
    return delay;
  }

  cancelRestarts(): void {
    for (const s of this.slots) clearTimeout(s.restartTimer);
  }

  /** True once every worker accepts (or has exited); false if one has not within `timeoutMs`. */
  startedAccepting(timeoutMs: number): Promise<boolean> {
    return allWithin(this.workers().map((w) => w.startedAccepting), timeoutMs);
  }

  /** True once every worker has stopped accepting (or exited); false if one has not within `timeoutMs`. */
  stoppedAccepting(timeoutMs: number): Promise<boolean> {
    return allWithin(this.workers().map((w) => w.stoppedAccepting), timeoutMs);
  }

  hasLiveWorkers(): boolean {
    return this.workers().some((w) => w.state !== "exited");
  }
}

async function allWithin(promises: Promise<void>[], timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([Promise.all(promises).then(() => true as const), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
