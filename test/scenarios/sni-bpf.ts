// Scenario, run by test/sni-routing.test.ts inside `unshare -n`: BPF mode,
// three apps on one port told apart by TLS server name (one default), plus a
// range of 2,000 shared ports; then a reload that adds a named app to a port
// another app had alone. Reports who served what, and the sockets.
import { tlsTarget, tlsWhoServes, type TlsTarget } from "../helpers/tls.js";
import { freePorts } from "../helpers/net.js";
import { runScenario, steeringStatus } from "./netns-lib.js";

runScenario(async (s) => {
  const [api, wild, fallback, solo, extra] = (await Promise.all(["api", "wild", "default", "solo", "extra"].map((n) => tlsTarget(n)))) as [TlsTarget, TlsTarget, TlsTarget, TlsTarget, TlsTarget];
  const [port, soloPort] = (await freePorts(2)) as [number, number];
  // Below where tests pick ports and far from the ephemeral range the TLS targets listen on.
  const range = "2000-3999";
  const app = (name: string, target: number, ports: (number | string)[], names?: string[]) => ({ Name: name, Ports: ports, Targets: [`127.0.0.1:${target}`], ...(names ? { ServerNames: names } : {}) });
  const apps = [app("api", api.port, [port, range], ["api.example.com"]), app("wild", wild.port, [port, range], ["*.example.com"]), app("default", fallback.port, [port, range]), app("solo", solo.port, [soloPort])];
  const sup = await s.supervisor({ config: { Apps: apps }, steering: "bpf", workers: 2 });
  const ask = async (p: number): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const name of ["api.example.com", "www.example.com", "other.org", ""]) out[name || "(none)"] = await tlsWhoServes(p, name);
    return out;
  };
  const before = { port: await ask(port), rangeLow: await ask(2000), rangeHigh: await ask(3999), solo: await tlsWhoServes(soloPort, "api.example.com") };
  const steeringBefore = await steeringStatus(sup);
  // A named app joins the port "solo" had alone: both now share one socket.
  const from = sup.logs.length;
  sup.writeConfig({ Apps: [...apps, app("extra", extra.port, [soloPort], ["extra.example.com"])] });
  process.kill(sup.pid, "SIGHUP");
  const ended = await sup.waitFor((l) => l.event === "reload_succeeded" || l.event === "reload_failed", 20_000, from);
  const after = { solo: await tlsWhoServes(soloPort, "api.example.com"), extra: await tlsWhoServes(soloPort, "extra.example.com"), port: await ask(port) };
  const steeringAfter = await steeringStatus(sup);
  await Promise.all([api, wild, fallback, solo, extra].map((t) => t.close()));
  return { before, after, reload: ended.event, socketsBefore: steeringBefore.sockets, socketsAfter: steeringAfter.sockets };
}, 90_000);
