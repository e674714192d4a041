// MaxConnectionsPerClient: one client address may hold at most that many
// connections to an app over every worker; other clients are not affected.
import test from "ava";
import net from "node:net";
import { startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { parseMetrics, sampleValue } from "./helpers/prom.js";

const LIMIT = 2;

/** Connects from `from`; resolves with the socket once echoed ("carried") or "closed" if the proxy closed it. */
async function connectFrom(port: number, from: string): Promise<net.Socket | "closed"> {
  const s = net.connect({ port, host: "127.0.0.1", localAddress: from });
  s.on("error", () => undefined);
  s.write("ping");
  // A reset ("error") or a close, whichever comes: both mean not carried.
  const first = await new Promise<string>((resolve) => {
    s.once("data", () => resolve("data"));
    s.once("close", () => resolve("close"));
  });
  if (first === "data") return s;
  s.destroy();
  return "closed";
}

test("a client over MaxConnectionsPerClient is closed at once on every worker; another client is carried; a release makes room", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "pc", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`], MaxConnectionsPerClient: LIMIT }] }, workers: 2, args: ["--access-log", "off"] });
  const open: net.Socket[] = [];
  t.teardown(async () => {
    for (const s of open) s.destroy();
    await sup.stop();
    await target.close();
  });
  for (let i = 0; i < LIMIT; i++) {
    const s = await connectFrom(port, "127.0.0.2");
    t.not(s, "closed");
    if (s !== "closed") open.push(s);
  }
  // Several tries: the kernel hands them to either worker; none may pass.
  for (let i = 0; i < 6; i++) t.is(await connectFrom(port, "127.0.0.2"), "closed", `try ${i} over the limit was carried`);
  for (let i = 0; i < LIMIT; i++) {
    const s = await connectFrom(port, "127.0.0.3");
    t.not(s, "closed", "another client was refused");
    if (s !== "closed") open.push(s);
  }
  const metrics = parseMetrics((await sup.admin("/metrics")).body);
  t.is(sampleValue(metrics, "switchyard_connection_errors_total", { app: "pc", reason: "client_limit" }), 6);
  // One of 127.0.0.2's ends: once its worker has seen that, 127.0.0.2 is carried again.
  open.shift()!.destroy();
  let again: net.Socket | "closed" = "closed";
  for (let i = 0; i < 50 && again === "closed"; i++) again = await connectFrom(port, "127.0.0.2");
  t.not(again, "closed");
  if (again !== "closed") open.push(again);
  t.is(await connectFrom(port, "127.0.0.2"), "closed");
});
