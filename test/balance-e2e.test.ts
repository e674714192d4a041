// Balancing through a real supervisor and its workers: source-hash keeps each client
// address on one target in every worker, and least-connections sends new connections
// to the target holding fewer.
import test from "ava";
import net from "node:net";
import type { Target as PlanTarget } from "../config/plan.js";
import { SourceHash } from "../worker/balancers/source-hash.js";
import { startSupervisor, type RunningSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget, type Target } from "./helpers/net.js";
import { status } from "./helpers/reload.js";

interface Tagged {
  socket: net.Socket;
  tag: string;
}

/** Connects from `localAddress`, resolves once the target's tag line has arrived; the socket stays open. */
function connectTagged(port: number, localAddress = "127.0.0.1", timeoutMs = 5000): Promise<Tagged> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no tag from port ${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => {
      text += c;
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      socket.removeAllListeners("data");
      resolve({ socket, tag: text.slice(0, nl) });
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once("close", () => {
      clearTimeout(timer);
      reject(new Error(`closed before the tag (port ${port})`));
    });
  });
}

async function tagFrom(port: number, localAddress: string): Promise<string> {
  const c = await connectTagged(port, localAddress);
  c.socket.destroy();
  return c.tag;
}

function cleanup(t: { teardown(fn: () => Promise<unknown>): void }, sup: RunningSupervisor, targets: Target[], held: Tagged[] = []): void {
  t.teardown(async () => {
    for (const h of held) h.socket.destroy();
    await sup.stop();
    await Promise.all(targets.map((x) => x.close()));
  });
}

test("source-hash: each client address reaches one target every time, with 2 workers", async (t) => {
  const targets = await Promise.all(["h1", "h2", "h3"].map((n) => startTarget(n, { tag: true })));
  const [port] = await freePorts(1);
  const written = targets.map((x, i) => `127.0.0.1:${x.port}${i === 2 ? " weight=2" : ""}`);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "sticky", Ports: [port!], Targets: written, Balance: "source-hash" }] }, workers: 2 });
  cleanup(t, sup, targets);

  // The workers' hash is deterministic: the test predicts it, and picks two loopback
  // clients the hash sends to different targets, so a strategy that ignored the
  // client could not pass by luck.
  const plan: PlanTarget[] = targets.map((x, i) => ({ label: `127.0.0.1:${x.port}`, host: "127.0.0.1", port: x.port, weight: i === 2 ? 2 : 1 }));
  const hash = new SourceHash(plan);
  const predicted = (client: string): string => targets[plan.indexOf(hash.order(() => true, client)[0]!)]!.name;
  const clients: string[] = [];
  for (let i = 2; i < 255 && clients.length < 2; i++) {
    const c = `127.0.0.${i}`;
    if (clients.length === 0 || predicted(clients[0]!) !== predicted(c)) clients.push(c);
  }
  t.is(clients.length, 2);

  for (const client of clients) {
    const tags: string[] = [];
    for (let round = 0; round < 4; round++) tags.push(...(await Promise.all(Array.from({ length: 5 }, () => tagFrom(port!, client)))));
    t.deepEqual(tags, Array(20).fill(predicted(client)), `client ${client}`);
  }
  // The weight stays out of the name /status and the metrics give the target.
  t.deepEqual((await status(sup)).apps[0]!.targets.map((x) => x.target), plan.map((x) => x.label));
});

test("least-connections: new connections go to the target holding fewer open ones", async (t) => {
  const targets = await Promise.all(["a", "b"].map((n) => startTarget(n, { tag: true })));
  const [port] = await freePorts(1);
  const labels = targets.map((x) => `127.0.0.1:${x.port}`);
  // One worker: counts are per worker, and this test must know every count.
  const sup = await startSupervisor({ config: { Apps: [{ Name: "lc", Ports: [port!], Targets: labels, Balance: "least-connections" }] }, workers: 1 });
  const held: Tagged[] = [];
  cleanup(t, sup, targets, held);

  for (let i = 0; i < 6; i++) held.push(await connectTagged(port!));
  const count = (tag: string): number => held.filter((h) => h.tag === tag && !h.socket.destroyed).length;
  t.deepEqual([count("a"), count("b")], [3, 3], `held: ${held.map((h) => h.tag).join(" ")}`);

  // Close a's three; the worker has let go of each once its access-log line is out.
  for (const h of held.filter((x) => x.tag === "a")) {
    const clientPort = h.socket.localPort;
    h.socket.destroy();
    await sup.waitFor((l) => l.client_port === clientPort && typeof l.end === "string", 5000);
  }
  // a holds 0, b holds 3: the next three all go to a (round robin would alternate).
  const next: Tagged[] = [];
  for (let i = 0; i < 3; i++) {
    const h = await connectTagged(port!);
    held.push(h);
    next.push(h);
  }
  t.deepEqual(next.map((h) => h.tag), ["a", "a", "a"]);
  // Now even again: the next two split.
  const last = [await connectTagged(port!), await connectTagged(port!)];
  held.push(...last);
  t.deepEqual(last.map((h) => h.tag).sort(), ["a", "b"]);
});
