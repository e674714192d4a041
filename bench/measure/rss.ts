// Resident memory of a party's whole process tree, once or sampled while
// something runs.
import { totalAnonRss, totalRss } from "../procfs.js";
import type { Party } from "../parties/party.js";

/** Sum of VmRSS over every process of the party; pids() re-reads the tree, as workers come and go. */
export function partyRss(party: Party): number {
  return totalRss(party.pids());
}

/** Sum of RssAnon over every process of the party: its own memory, the shared binary left out. */
export function partyAnonRss(party: Party): number {
  return totalAnonRss(party.pids());
}

/** Runs `work` and returns its result with the highest RSS sampled every `everyMs` meanwhile. */
export async function peakRssDuring<T>(party: Party, work: Promise<T>, everyMs = 250): Promise<{ result: T; peak: number }> {
  let peak = partyRss(party);
  const timer = setInterval(() => {
    peak = Math.max(peak, partyRss(party));
  }, everyMs);
  try {
    return { result: await work, peak };
  } finally {
    clearInterval(timer);
  }
}

export const MiB = 2 ** 20;
