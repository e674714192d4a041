// Opens COUNT connections to PORT, each one confirmed end to end (the hold
// backend's "+" came back through the proxy), prints {"ready": n, "failed": m},
// then holds them until SIGTERM. Bounded: gives up after DEADLINE_MS.
import net from "node:net";

const port = Number(process.argv[2]);
const count = Number(process.argv[3]);
const deadlineMs = Number(process.argv[4] ?? 60_000);
const PARALLEL = 200;

const sockets: net.Socket[] = [];
let ready = 0;
let failed = 0;
let started = 0;
const giveUp = Date.now() + deadlineMs;

function openOne(): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    sockets.push(s);
    const timer = setTimeout(() => finish(false), Math.max(1, giveUp - Date.now()));
    let settled = false;
    function finish(ok: boolean) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok) ready++;
      else failed++;
      resolve();
    }
    s.once("data", () => finish(true));
    s.on("error", () => finish(false));
    s.on("close", () => finish(false));
  });
}

async function lane(): Promise<void> {
  while (started < count && Date.now() < giveUp) {
    started++;
    await openOne();
  }
}

await Promise.all(Array.from({ length: PARALLEL }, lane));
console.log(JSON.stringify({ ready, failed }));
process.on("SIGTERM", () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
setInterval(() => undefined, 1 << 30);
