// Both legs of a proxied connection carry TCP keepalive (so a peer that
// vanished without FIN or RST is found out), and the client leg has it, like
// TCP_NODELAY, from the listening socket rather than from a per-connection call.
import test from "ava";
import { runCommand, startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { hold } from "./helpers/held.js";
import { pollUntil } from "./helpers/core.js";

/** `ss` lines of established TCP sockets whose `side` port is `port`. */
async function established(side: "sport" | "dport", port: number): Promise<string[]> {
  const r = await runCommand("ss", ["-tnoH", "state", "established", `( ${side} = :${port} )`]);
  if (r.code !== 0) throw new Error(`ss failed: ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l.trim() !== "");
}

test("the worker's client and target sockets run keepalive timers; the test's own sockets, which set none, do not", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "k", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] }, workers: 1 });
  const conn = await hold(port);
  t.teardown(async () => {
    conn.socket.destroy();
    await sup.stop("SIGKILL");
    await target.close();
  });
  t.is(String(await conn.roundTrip(Buffer.from("ping"))), "ping");

  const clientLeg = await established("sport", port);
  t.is(clientLeg.length, 1, clientLeg.join("\n"));
  // 60 s idle before the first probe: the timer shows 5xsec or 60sec.
  const KEEPALIVE = /timer:\(keepalive,(5\d|60)sec,0\)/;
  t.regex(clientLeg[0]!, KEEPALIVE);
  // The relay sets the target leg's once the connection has lasted a second (native/relay_dial.c).
  let targetLeg: string[] = [];
  await pollUntil(async () => {
    targetLeg = await established("dport", target.port);
    return targetLeg.length === 1 && KEEPALIVE.test(targetLeg[0]!);
  }, 5000);
  t.is(targetLeg.length, 1, targetLeg.join("\n"));
  t.regex(targetLeg[0]!, KEEPALIVE);
  // The control: the test's client and its echo target set no keepalive.
  const [ownClient] = await established("dport", port);
  const [ownTarget] = await established("sport", target.port);
  t.notRegex(ownClient!, /keepalive/);
  t.notRegex(ownTarget!, /keepalive/);
});
