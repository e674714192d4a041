// The PROXY protocol with HAProxy as the real peer on both sides: switchyard's
// header (v1, v2) read by HAProxy's accept-proxy, and HAProxy's send-proxy /
// send-proxy-v2 read by an AcceptProxyProtocol app, whose client address is
// then the real client's everywhere (access log, per-client limit). Clients
// dial from 127.0.0.x addresses of their own, so the header is the only way
// the far side can know them.
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { startSupervisor } from "./helpers/supervisor.js";
import { dialFrom, freePorts, startTarget } from "./helpers/net.js";
import { startHAProxy } from "./helpers/peers.js";


test("ProxyProtocol v1 and v2: HAProxy (accept-proxy) sees the real client and the address it dialled", async (t) => {
  const [h1, h2, s1, s2] = (await freePorts(4)) as [number, number, number, number];
  // HAProxy answers each HTTP request with what the PROXY header told it.
  const answer = `http-request return status 200 content-type text/plain lf-string "%[src] %[src_port] %[dst] %[dst_port]\\n"`;
  await startHAProxy(
    t,
    `defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\nfrontend v1\n  bind 127.0.0.1:${h1} accept-proxy\n  ${answer}\nfrontend v2\n  bind 127.0.0.1:${h2} accept-proxy\n  ${answer}\n`,
    [h1, h2],
  );
  const sup = await startSupervisor({
    config: {
      Apps: [
        { Name: "v1", Ports: [s1], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${h1}`], ProxyProtocol: "v1" },
        { Name: "v2", Ports: [s2], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${h2}`], ProxyProtocol: "v2" },
      ],
    },
    workers: 1,
    args: ["--access-log", "off"],
  });
  t.teardown(() => sup.stop());
  for (const [port, from] of [[s1, "127.0.0.71"], [s2, "127.0.0.72"]] as const) {
    const [reply, localPort] = await dialFrom(from, port, "GET / HTTP/1.0\r\n\r\n");
    const body = reply.slice(reply.indexOf("\r\n\r\n") + 4);
    t.is(body, `${from} ${localPort} 127.0.0.1 ${port}\n`, `through port ${port}: ${reply}`);
  }
});

test("AcceptProxyProtocol behind HAProxy (send-proxy, send-proxy-v2): the real client in the access log and in MaxConnectionsPerClient", async (t) => {
  const target = await startTarget("echo");
  const [h1, h2, s1, s2] = (await freePorts(4)) as [number, number, number, number];
  await startHAProxy(
    t,
    `defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\nlisten v1\n  bind 127.0.0.1:${h1}\n  server sy 127.0.0.1:${s1} send-proxy\nlisten v2\n  bind 127.0.0.1:${h2}\n  server sy 127.0.0.1:${s2} send-proxy-v2\n`,
    [h1, h2],
  );
  const app = (name: string, port: number): Record<string, unknown> => ({ Name: name, Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`], AcceptProxyProtocol: true, MaxConnectionsPerClient: 1 });
  const sup = await startSupervisor({ config: { Apps: [app("v1", s1), app("v2", s2)] }, workers: 2 });
  const held: net.Socket[] = [];
  t.teardown(async () => {
    for (const s of held) s.destroy();
    await sup.stop();
    await target.close();
  });
  for (const [port, from] of [[h1, "127.0.0.81"], [h2, "127.0.0.82"]] as const) {
    const [reply, localPort] = await dialFrom(from, port, `hello from ${from}`);
    t.is(reply, `hello from ${from}`, "the bytes after the header reach the target, and only they");
    // The port is the one the client dialled: HAProxy's, as its header says.
    const line = await sup.waitFor((l) => l.client_addr === from && l.port === port);
    t.like(line, { client_port: localPort, end: "closed", bytes_in: `hello from ${from}`.length });
  }
  // One connection per client address (HAProxy's own address is the same for all of them).
  const first = net.connect({ host: "127.0.0.1", port: h2, localAddress: "127.0.0.90" });
  held.push(first);
  first.on("error", () => undefined);
  first.write("ping");
  await once(first, "data");
  const [second] = await dialFrom("127.0.0.90", h2, "again");
  t.is(second, "", "a second connection of the same real client was carried");
  await sup.waitFor((l) => l.client_addr === "127.0.0.90" && l.end === "client_limit");
  const [other] = await dialFrom("127.0.0.91", h2, "other client");
  t.is(other, "other client");
});

test("AcceptProxyProtocol: no header, garbage, an oversized one, silence and a byte a second are closed within the bounds and counted", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "pp", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`], AcceptProxyProtocol: true }] }, workers: 1 });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  const closedAfter = async (send: (s: net.Socket) => void): Promise<{ ms: number; reply: string }> => {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => undefined);
    await once(s, "connect");
    const began = Date.now();
    let reply = "";
    s.setEncoding("utf8").on("data", (d: string) => (reply += d));
    send(s);
    await once(s, "close");
    return { ms: Date.now() - began, reply };
  };
  const v2big = Buffer.from("0d0a0d0a000d0a515549540a2111ffff", "hex");
  let dribble: NodeJS.Timeout | undefined;
  const results = await Promise.all([
    closedAfter((s) => s.write("hello, no header\r\n")),
    closedAfter((s) => s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))),
    closedAfter((s) => s.write(v2big)),
    closedAfter(() => undefined),
    // A valid-looking v1 header, one byte every 300 ms: never complete within the bound.
    closedAfter((s) => {
      const header = "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n";
      let i = 0;
      dribble = setInterval(() => (i < header.length ? s.write(header[i++]!) : undefined), 300);
    }),
  ]);
  clearInterval(dribble);
  t.log(results.map((r) => r.ms).join(", "));
  for (const r of results) t.is(r.reply, "", "nothing was carried");
  for (const r of results.slice(0, 3)) t.true(r.ms < 1000, `refused at once, not after ${r.ms} ms`);
  for (const r of results.slice(3)) t.true(r.ms >= 4500 && r.ms < 8000, `closed at the 5 s bound, not after ${r.ms} ms`);
  // Access-log lines come through the supervisor's pipe: the last may follow the close by a moment.
  const refused = (): number => sup.logs.filter((l) => l.end === "proxy_header").length;
  for (const until = Date.now() + 5000; refused() < 5 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
  t.is(refused(), 5);
  const metrics = (await sup.admin("/metrics")).body;
  t.regex(metrics, /switchyard_connection_errors_total\{app="pp",reason="proxy_header"\} 5/);
  // A valid header still works, with its payload in the same segment.
  const ok = await closedAfter((s) => s.end("PROXY TCP4 192.0.2.1 127.0.0.1 40000 " + port + "\r\npayload"));
  t.is(ok.reply, "payload");
});

test("AcceptProxyProtocol with source-hash: the header's client address decides the target, not the balancer's", async (t) => {
  const targets = await Promise.all(["t1", "t2", "t3"].map((n) => startTarget(n, { tag: true })));
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "h", Ports: [port], Addresses: ["127.0.0.1"], Targets: targets.map((x) => `127.0.0.1:${x.port}`), AcceptProxyProtocol: true, Balance: "source-hash" }] }, workers: 2, args: ["--access-log", "off"] });
  t.teardown(async () => {
    await sup.stop();
    await Promise.all(targets.map((x) => x.close()));
  });
  // Every connection comes from 127.0.0.1 (the "balancer"); the headers name 12 clients.
  const servedBy = async (client: string): Promise<string> => {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => undefined);
    s.write(`PROXY TCP4 ${client} 127.0.0.1 40000 ${port}\r\n`);
    const [tag] = (await once(s, "data")) as [Buffer];
    s.destroy();
    return tag.toString().trim();
  };
  const clients = Array.from({ length: 12 }, (_, i) => `198.51.100.${i + 1}`);
  const first = new Map<string, string>();
  for (const c of clients) first.set(c, await servedBy(c));
  for (const c of clients) t.is(await servedBy(c), first.get(c)!, `client ${c} moved`);
  t.true(new Set(first.values()).size >= 2, `all 12 clients hashed to ${[...new Set(first.values())].join(",")}: the balancer's address was used`);
});
