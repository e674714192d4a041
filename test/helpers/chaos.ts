// Fault-under-load scenarios (test/chaos-*.test.ts): each tallies the
// connections it made and reports one row per fault. The row goes to the
// test's log, and, when SWITCHYARD_CHAOS_RESULTS names a directory (`make
// chaos`), is appended to results.jsonl there for chaos-table.ts to print.
import fs from "node:fs";
import path from "node:path";
import type { ExecutionContext } from "ava";
import type { ExchangeOutcome, LoadResult } from "./net.js";

export interface ChaosRow {
  fault: string;
  /** Connections dialled during the scenario, the fault's own included. */
  attempted: number;
  /** Of those, the ones that did not get their bytes back whole. */
  failed: number;
  /** Why they failed, by error code as the client saw it (EOF: closed before the whole echo). */
  whatFailed: Record<string, number>;
  /** Which connections the fault necessarily touched: all the failures must be among them. */
  touched: string;
}

export const RESULTS_FILE = "results.jsonl";

export function report(t: ExecutionContext, row: ChaosRow): void {
  t.log(`chaos-result ${JSON.stringify(row)}`);
  const dir = process.env.SWITCHYARD_CHAOS_RESULTS;
  if (dir) fs.appendFileSync(path.join(dir, RESULTS_FILE), `${JSON.stringify(row)}\n`);
}

/** Counts of connections, by outcome, adding up several loads and single exchanges. */
export class Tally {
  attempted = 0;
  failed = 0;
  readonly errors: Record<string, number> = {};

  /** A clientLoops/startLoad result: a short echo counts as a failure (EOF). */
  addLoad(r: LoadResult): this {
    this.attempted += r.ok + r.failed + r.wrongBytes;
    this.failed += r.failed + r.wrongBytes;
    for (const [code, n] of Object.entries(r.errors)) this.errors[code] = (this.errors[code] ?? 0) + n;
    if (r.wrongBytes > 0) this.errors.EOF = (this.errors.EOF ?? 0) + r.wrongBytes;
    return this;
  }

  addOutcomes(outcomes: readonly ExchangeOutcome[]): this {
    for (const o of outcomes) this.add(o.result === "ok" ? undefined : (o.error ?? "EOF"));
    return this;
  }

  /** One connection: undefined if it got its bytes back, else how it failed. */
  add(error: string | undefined): this {
    this.attempted += 1;
    if (error !== undefined) {
      this.failed += 1;
      this.errors[error] = (this.errors[error] ?? 0) + 1;
    }
    return this;
  }

  static sum(...tallies: Tally[]): Tally {
    const out = new Tally();
    for (const x of tallies) {
      out.attempted += x.attempted;
      out.failed += x.failed;
      for (const [code, n] of Object.entries(x.errors)) out.errors[code] = (out.errors[code] ?? 0) + n;
    }
    return out;
  }
}
