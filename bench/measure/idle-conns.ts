// Holds `count` idle connections through the party's hold port (each confirmed
// end to end by the hold backend's "+") and reads the proxy's RSS meanwhile.
import { fileURLToPath } from "node:url";
import { start, stop, waitForLine } from "../procs.js";
import type { Party } from "../parties/party.js";
import { partyRss } from "./rss.js";

const holder = fileURLToPath(new URL("../servers/conn-holder.js", import.meta.url));

export interface IdleConns {
  ready: number;
  failed: number;
  rssBefore: number;
  rssHeld: number;
}

export async function holdIdleConnections(party: Party, count: number): Promise<IdleConns> {
  const rssBefore = partyRss(party);
  const p = start("conn-holder", process.execPath, [holder, String(party.port("hold")), String(count), "60000"], { maxFiles: true });
  try {
    const line = await waitForLine(p, (l) => l.startsWith('{"ready"'), 90_000);
    const { ready, failed } = JSON.parse(line) as { ready: number; failed: number };
    // Let the workers finish their bookkeeping for the last connections.
    await new Promise((r) => setTimeout(r, 500));
    return { ready, failed, rssBefore, rssHeld: partyRss(party) };
  } finally {
    await stop(p);
  }
}
