// Small socket clients the measurements share. Everything here dials 127.0.0.1
// inside the benchmark's own network namespace.
import net from "node:net";
import { sleep } from "./procs.js";

export const HOST = "127.0.0.1";

/** Opens a connection, reads until the peer closes or sends a newline; the first line. */
export function readLine(port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port });
    let data = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no line from port ${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (err?: Error) => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(data.split("\n")[0]!);
    };
    s.setEncoding("utf8");
    s.on("data", (c: string) => {
      data += c;
      if (data.includes("\n")) done();
    });
    s.on("end", () => done());
    s.on("error", (e) => done(e));
  });
}

/** Polls until a TCP connection to `port` succeeds. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: HOST, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not answer within ${timeoutMs} ms`);
    await sleep(20);
  }
}

export async function httpJson<T>(port: number, path: string): Promise<T> {
  const res = await fetch(`http://${HOST}:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  return (await res.json()) as T;
}
