import type { Plan } from "../../config/plan.js";
import { closeFd, COUNTER_ROWS, COUNTER_SLOTS, CounterTable, dupFd } from "../../native/index.js";

/** What a successor (an upgrade) needs to count on in the same table. */
export interface CountersHandover {
  slots: { name: string; slot: number }[];
  /** Rows of the predecessor's workers, still counting while they drain. */
  rows: number[];
}

/** What a worker needs to count its connections against its apps' MaxConnections. */
export interface WorkerCounters {
  /** Its row in the table: its own share, settled when it exits. */
  row: number;
  /** App name → slot, for the apps of its plan that set MaxConnections or MaxConnectionsPerClient. */
  slots: Record<string, number>;
}

/**
 * The shared table behind MaxConnections (native/counters.c): every worker of
 * every generation counts an app's open connections into the same slot, so a
 * limit holds across workers and across a reload's drain. Slots are kept per
 * app name for as long as the supervisor lives; rows, one per live worker, are
 * settled and reused once their worker has exited.
 */
export class ConnectionCounters {
  fd = CounterTable.create();
  table = new CounterTable(this.fd);
  private readonly slots = new Map<string, number>();
  private freeRows = Array.from({ length: COUNTER_ROWS }, (_, i) => COUNTER_ROWS - 1 - i);
  /** The predecessor's rows, settled once it has gone (its workers with it). */
  private inheritedRows: number[] = [];

  /**
   * Counts on in a predecessor's table (an upgrade), before any worker starts:
   * its draining workers' connections still count against every app's limit.
   * `fd` stays the caller's.
   */
  adopt(fd: number, h: CountersHandover): void {
    closeFd(this.fd);
    this.fd = dupFd(fd);
    this.table = new CounterTable(this.fd);
    for (const { name, slot } of h.slots) if (slot >= 0 && slot < COUNTER_SLOTS) this.slots.set(name, slot);
    const taken = new Set(h.rows.filter((r) => r >= 0 && r < COUNTER_ROWS));
    this.freeRows = this.freeRows.filter((r) => !taken.has(r));
    this.inheritedRows = [...taken];
  }

  /** The predecessor has exited: nothing of its workers counts any more. */
  releaseInherited(): void {
    for (const row of this.inheritedRows.splice(0)) this.release(row);
  }

  /** What a successor needs: which app counts in which slot, and the rows still in use. */
  handover(): CountersHandover {
    const free = new Set(this.freeRows);
    const rows = Array.from({ length: COUNTER_ROWS }, (_, i) => i).filter((r) => !free.has(r));
    return { slots: [...this.slots].map(([name, slot]) => ({ name, slot })), rows };
  }

  /** A row and the plan's slots for a new worker; undefined when every row is taken (the worker then enforces no app limit). */
  forWorker(plan: Plan, livePlans: () => Plan[]): WorkerCounters | undefined {
    const row = this.freeRows.pop();
    if (row === undefined) return undefined;
    const slots: Record<string, number> = {};
    for (const app of plan.apps) {
      if (app.maxConnections === null && app.maxConnectionsPerClient === null) continue;
      const slot = this.slotOf(app.name, livePlans);
      if (slot !== undefined) slots[app.name] = slot;
    }
    return { row, slots };
  }

  /** The app's open connections over every worker, if it has a slot. */
  openConnections(app: string): number | undefined {
    const slot = this.slots.get(app);
    return slot === undefined ? undefined : this.table.read(slot);
  }

  /** Call once the worker has exited (its channel closed): nothing of it can count any more. */
  release(row: number): void {
    this.table.settle(row);
    this.freeRows.push(row);
  }

  private slotOf(name: string, livePlans: () => Plan[]): number | undefined {
    const known = this.slots.get(name);
    if (known !== undefined) return known;
    if (this.slots.size >= COUNTER_SLOTS) this.reclaim(livePlans());
    const used = new Set(this.slots.values());
    for (let slot = 0; slot < COUNTER_SLOTS; slot++) {
      if (used.has(slot)) continue;
      this.slots.set(name, slot);
      return slot;
    }
    return undefined;
  }

  /** Frees the slots of apps no live generation has and no connection holds. */
  private reclaim(plans: Plan[]): void {
    const live = new Set(plans.flatMap((p) => p.apps.map((a) => a.name)));
    for (const [name, slot] of this.slots) {
      if (!live.has(name) && this.table.read(slot) === 0) this.slots.delete(name);
    }
  }
}
