// Routing by TLS server name (passthrough, ports mode): apps share one port,
// each naming what it serves; real TLS clients (Node's tls) reach the target
// their ClientHello names, end to end, without switchyard holding a key. A
// ClientHello in pieces arrives whole and unchanged; what is not one is closed.
// In BPF mode (scenario test/scenarios/sni-bpf.ts) the sharing apps share a socket.
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { startSupervisor } from "./helpers/supervisor.js";
import { freePorts } from "./helpers/net.js";
import { captureClientHello, tlsTarget, tlsWhoServes } from "./helpers/tls.js";
import { scenarioResult } from "./helpers/netns.js";

test("names route exact before wildcard, then to the port's default; no SNI goes to the default", async (t) => {
  const [api, wild, fallback] = await Promise.all([tlsTarget("api"), tlsTarget("wild"), tlsTarget("default")]);
  const [port] = (await freePorts(1)) as [number];
  const app = (name: string, target: number, names?: string[]) => ({ Name: name, Ports: [port], Targets: [`127.0.0.1:${target}`], ...(names ? { ServerNames: names } : {}) });
  const sup = await startSupervisor({
    config: { Apps: [app("api", api.port, ["API.example.com"]), app("wild", wild.port, ["*.example.com", "example.net"]), app("default", fallback.port)] },
    workers: 2,
  });
  t.teardown(async () => {
    await sup.stop();
    await Promise.all([api.close(), wild.close(), fallback.close()]);
  });
  const cases: [string, string][] = [
    ["api.example.com", "api"],
    ["www.example.com", "wild"],
    ["a.b.example.com", "wild"],
    ["example.net", "wild"],
    ["example.com", "default"],
    ["other.org", "default"],
    ["", "default"],
  ];
  for (const [servername, expected] of cases) t.is(await tlsWhoServes(port, servername), expected, `SNI ${JSON.stringify(servername)}`);
  const line = await sup.waitFor((l) => l.app === "api" && l.end === "closed");
  t.true((line.bytes_in as number) > 0);
});

test("without a default app, a name no app claims is closed (no_app, counted); garbage and a stalled hello are closed (client_hello)", async (t) => {
  const api = await tlsTarget("api");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({
    config: { Apps: [
      { Name: "api", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${api.port}`], ServerNames: ["api.example.com"] },
      { Name: "web", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${api.port}`], ServerNames: ["www.example.com"] },
    ] },
    workers: 1,
  });
  t.teardown(async () => {
    await sup.stop();
    await api.close();
  });
  t.is(await tlsWhoServes(port, "unknown.example.com"), "");
  t.is(await tlsWhoServes(port, ""), "");
  t.is(await tlsWhoServes(port, "api.example.com"), "api");
  const closedAfter = async (send: (s: net.Socket) => void): Promise<number> => {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => undefined);
    await once(s, "connect");
    const began = Date.now();
    send(s);
    await once(s, "close");
    return Date.now() - began;
  };
  const hello = await captureClientHello("api.example.com");
  let dribble: NodeJS.Timeout | undefined;
  const [http, slow] = await Promise.all([
    closedAfter((s) => s.write("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")),
    closedAfter((s) => {
      let i = 0;
      dribble = setInterval(() => (i < hello.length ? s.write(hello.subarray(i, ++i)) : undefined), 200);
    }),
  ]);
  clearInterval(dribble);
  t.true(http < 1000, `plain HTTP closed after ${http} ms`);
  t.true(slow >= 4500 && slow < 8000, `a byte every 200 ms closed after ${slow} ms`);
  const ends = (): string[] => sup.logs.filter((l) => typeof l.end === "string" && l.end !== "closed").map((l) => l.end as string).sort();
  for (const until = Date.now() + 5000; ends().length < 4 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(ends(), ["client_hello", "client_hello", "no_app", "no_app"]);
  const metrics = (await sup.admin("/metrics")).body;
  t.regex(metrics, /switchyard_connection_errors_total\{app="",reason="no_app"\} 2|switchyard_connection_errors_total\{reason="no_app"\} 2/);
});

test("a ClientHello split over several segments reaches the target whole and unchanged", async (t) => {
  const [port, other] = (await freePorts(2)) as [number, number];
  // A plain TCP target that keeps what it receives: the ClientHello must arrive exactly as sent.
  let received = Buffer.alloc(0);
  const target = net.createServer((s) => {
    s.on("data", (d: Buffer) => (received = Buffer.concat([received, d])));
    s.on("error", () => undefined);
  });
  target.listen(0, "127.0.0.1");
  await once(target, "listening");
  const targetPort = (target.address() as net.AddressInfo).port;
  const sup = await startSupervisor({
    config: { Apps: [
      { Name: "named", Ports: [port], Targets: [`127.0.0.1:${targetPort}`], ServerNames: ["split.example.com"] },
      { Name: "default", Ports: [port], Targets: [`127.0.0.1:${other}`] },
    ] },
    workers: 1,
  });
  t.teardown(async () => {
    await sup.stop();
    target.close();
  });
  const hello = await captureClientHello("split.example.com");
  const s = net.connect({ port, host: "127.0.0.1", noDelay: true });
  s.on("error", () => undefined);
  await once(s, "connect");
  const cuts = [1, 5, 11, Math.floor(hello.length / 2), hello.length];
  for (let i = 0, from = 0; i < cuts.length; from = cuts[i]!, i++) {
    s.write(hello.subarray(from, cuts[i]));
    await new Promise((r) => setTimeout(r, 30));
  }
  for (const until = Date.now() + 5000; received.length < hello.length && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
  t.true(received.equals(hello), `the target got ${received.length} of ${hello.length} bytes, or other bytes`);
  s.destroy();
});

interface BpfResult {
  before: { port: Record<string, string>; rangeLow: Record<string, string>; rangeHigh: Record<string, string>; solo: string };
  after: { solo: string; extra: string; port: Record<string, string> };
  reload: string;
  socketsBefore: number;
  socketsAfter: number;
}

test("BPF mode: apps sharing a port (and 2,000 more) by name share one socket; a named app joining a port goes through a reload", async (t) => {
  const r = await scenarioResult<BpfResult>(t, "sni-bpf");
  const routed = { "api.example.com": "api", "www.example.com": "wild", "other.org": "default", "(none)": "default" };
  t.deepEqual(r.before.port, routed);
  t.deepEqual(r.before.rangeLow, routed);
  t.deepEqual(r.before.rangeHigh, routed);
  t.is(r.before.solo, "solo");
  // One socket for the three sharing apps, one for solo.
  t.is(r.socketsBefore, 2);
  t.is(r.reload, "reload_succeeded");
  t.deepEqual(r.after, { solo: "solo", extra: "extra", port: routed });
  t.is(r.socketsAfter, 2);
});
