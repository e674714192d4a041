// Polls a tag port with fresh connections until it answers with the wanted tag:
// there is no event for "new connections now follow the new config", so the
// clock runs until they do. Bounded by a deadline.
import { readLine } from "../net.js";

export interface TagPoll {
  /** Milliseconds from `since` (performance.now()) to the first wanted answer. */
  firstMs: number;
  /** … to the start of the final run of `consecutive` wanted answers in a row. */
  settledMs: number;
  /** Other answers after the first wanted one: the old config still took new connections. */
  stale: number;
}

export async function pollTag(port: number, want: string, since: number, timeoutMs: number, consecutive = 1): Promise<TagPoll> {
  const deadline = since + timeoutMs;
  let firstMs = NaN;
  let runStart = NaN;
  let run = 0;
  let stale = 0;
  for (;;) {
    const answer = await readLine(port, 2000).catch(() => "");
    const at = performance.now() - since;
    if (answer === want) {
      if (Number.isNaN(firstMs)) firstMs = at;
      if (run++ === 0) runStart = at;
      if (run >= consecutive) return { firstMs, settledMs: runStart, stale };
    } else {
      run = 0;
      if (!Number.isNaN(firstMs)) stale++;
      if (performance.now() > deadline) throw new Error(`port ${port} did not answer "${want}"${consecutive > 1 ? ` ${consecutive} times in a row` : ""} within ${timeoutMs} ms (last: "${answer}")`);
      // A refused connection returns at once; don't spin on it.
      if (answer === "") await new Promise((r) => setTimeout(r, 2));
    }
  }
}
