// The PROXY protocol with nginx (its stream module) as the real peer: its
// `listen ... proxy_protocol` reads switchyard's v1 and v2 headers, and its
// `proxy_protocol on` (v1) is read by an AcceptProxyProtocol app.
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { startSupervisor } from "./helpers/supervisor.js";
import { dialFrom, freePorts, startTarget } from "./helpers/net.js";
import { startNginx } from "./helpers/peers.js";


test("nginx reads ProxyProtocol v1 and v2: the real client and the address it dialled", async (t) => {
  const [n1, n2, s1, s2] = (await freePorts(4)) as [number, number, number, number];
  const answer = `return "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\\n";`;
  await startNginx(t, `server { listen 127.0.0.1:${n1} proxy_protocol; ${answer} }\nserver { listen 127.0.0.1:${n2} proxy_protocol; ${answer} }`, [n1, n2]);
  const sup = await startSupervisor({
    config: { Apps: [
      { Name: "v1", Ports: [s1], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${n1}`], ProxyProtocol: "v1" },
      { Name: "v2", Ports: [s2], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${n2}`], ProxyProtocol: "v2" },
    ] },
    workers: 1,
    args: ["--access-log", "off"],
  });
  t.teardown(() => sup.stop());
  for (const [port, from] of [[s1, "127.0.0.61"], [s2, "127.0.0.62"]] as const) {
    const [reply, localPort] = await dialFrom(from, port, "");
    t.is(reply, `${from} ${localPort} 127.0.0.1 ${port}\n`);
  }
});

test("behind nginx (proxy_protocol on): an AcceptProxyProtocol app sees the real client", async (t) => {
  const target = await startTarget("echo");
  const [n, s] = (await freePorts(2)) as [number, number];
  await startNginx(t, `server { listen 127.0.0.1:${n}; proxy_pass 127.0.0.1:${s}; proxy_protocol on; proxy_half_close on; }`, [n]);
  const sup = await startSupervisor({ config: { Apps: [{ Name: "pp", Ports: [s], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`], AcceptProxyProtocol: true }] }, workers: 1 });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  const [reply, localPort] = await dialFrom("127.0.0.63", n, "through nginx");
  t.is(reply, "through nginx");
  const line = await sup.waitFor((l) => l.app === "pp" && l.end === "closed");
  t.like(line, { client_addr: "127.0.0.63", client_port: localPort, port: n });
});
