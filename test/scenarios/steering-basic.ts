// Scenario, run by test/steering-native.test.ts inside `unshare -n`: load and
// attach the steering program, steer ports to two apps' sockets, dial them and
// report what answered. Prints one JSON object; the test asserts on it.
import { once } from "node:events";
import { closeSync, openSync } from "node:fs";
import net from "node:net";
import { networkInterfaces } from "node:os";

import { listenTcp, socketName } from "../../native/index.js";
import { type PortBinding, type SlotCounters, loadSteering } from "../../native/steering.js";
import { deadline, dial, emit, errorOf, netnsIno, netnsLinks, openFds, requireIsolatedNetns } from "./steering-lib.js";

requireIsolatedNetns();
deadline(60_000);

const ipv6 = (networkInterfaces().lo ?? []).some((a) => a.address === "::1");
const families: (4 | 6)[] = ipv6 ? [4, 6] : [4];
const loopback = { 4: "127.0.0.1", 6: "::1" } as const;
const anyPrefix = { 4: "0.0.0.0/0", 6: "::/0" } as const;
const everywhere = (port: number, slot: number): PortBinding[] =>
  families.map((family) => ({ family, prefix: anyPrefix[family], port, slot }));
const ports = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** One app: a listening socket made the way the supervisor makes it, served by Node. */
async function app(name: string, host: string): Promise<{ fd: number; server: net.Server; bound: string }> {
  const fd = listenTcp(host, 0, 511, { v6only: false });
  const bound = `${socketName(fd).address}:${socketName(fd).port}`;
  const server = net.createServer((sock) => sock.end(`${name}:${sock.localPort}`));
  server.listen({ fd });
  await once(server, "listening");
  return { fd, server, bound };
}

/** Dials every family; "family:result" per family. */
async function dialAll(port: number): Promise<string[]> {
  const out: string[] = [];
  for (const f of families) out.push(`${f}:${await dial(loopback[f], port)}`);
  return out;
}

const fdsAtStart = openFds();
const ino = netnsIno();

// Errors that need no attached program.
const errors: Record<string, ReturnType<typeof errorOf>> = {
  missingObject: errorOf(() => loadSteering("/nonexistent/steering.bpf.o")),
};
const fdsAfterFailedLoad = openFds();

const s = loadSteering();
s.attach();
const link = s.linkInfo();
if (link === null) throw new Error("attached, but linkInfo() is null");
errors.attachTwice = errorOf(() => s.attach());

// Apps a (slot 0) and b (slot 1): AF_INET6 bound to the v4-mapped loopback, not
// IPv6-only, so bpf_sk_assign takes them for IPv4 and IPv6 lookups. App c (slot 2)
// is bound to [::1], which the kernel makes IPv6-only whatever IPV6_V6ONLY says.
const a = await app("a", "::ffff:127.0.0.1");
const b = await app("b", "::ffff:127.0.0.1");
const c = ipv6 ? await app("c", "::1") : null;
s.setAppSocket(0, a.fd);
s.setAppSocket(1, b.fd);
if (c) s.setAppSocket(2, c.fd);

const devNull = openSync("/dev/null", "r");
errors.slotOutOfRange = errorOf(() => s.setAppSocket(4096, a.fd));
errors.badFd = errorOf(() => s.setAppSocket(5, 999_999));
errors.notASocket = errorOf(() => s.setAppSocket(5, devNull));
errors.badPrefix = errorOf(() => s.setPorts([{ family: 4, prefix: "::/0", port: 1, slot: 0 }]));
closeSync(devNull);

const countersAtStart = Object.fromEntries(s.counters());

// Ten ports: 20001-20005 to a, 20006-20010 to b; and 10,000 ports to b in one batch.
s.setPorts([...ports(20001, 20005).flatMap((p) => everywhere(p, 0)), ...ports(20006, 20010).flatMap((p) => everywhere(p, 1))]);
const range = ports(30000, 39999).flatMap((p) => everywhere(p, 1));
const t0 = process.hrtime.bigint();
s.setPorts(range);
const rangeSetMs = Number(process.hrtime.bigint() - t0) / 1e6;

const tenPorts: Record<string, string[]> = {};
for (const p of ports(20001, 20010)) tenPorts[p] = await dialAll(p);
const rangeSample: Record<string, string[]> = {};
for (const p of [30000, 34567, 39999]) rangeSample[p] = await dialAll(p);
const unconfigured = await dialAll(20011);
const countersAfterDials = Object.fromEntries(s.counters());

// Delete a port; move a port; longest prefix wins.
const deleted = s.deletePorts(families.map((family) => ({ family, prefix: anyPrefix[family], port: 20001 })));
const deletedAgain = s.deletePorts([{ family: 4, prefix: "0.0.0.0/0", port: 20001 }]);
const afterDelete = await dialAll(20001);
s.setPorts(everywhere(20002, 1));
const afterMove = await dialAll(20002);
s.setPorts([
  { family: 4, prefix: "0.0.0.0/0", port: 20012, slot: 0 },
  { family: 4, prefix: "127.0.0.1/32", port: 20012, slot: 1 },
]);
const longestPrefix = { "127.0.0.1": await dial("127.0.0.1", 20012), "127.0.0.2": await dial("127.0.0.2", 20012) };

// App c's IPv6-only socket: IPv4 is refused by bpf_sk_assign (EAFNOSUPPORT), IPv6 works.
let v6only: { dialled: string[]; counters: SlotCounters | undefined } | null = null;
if (c) {
  s.setPorts(everywhere(20013, 2));
  v6only = { dialled: await dialAll(20013), counters: s.counters(3).get(2) };
}

// A bystander bound the ordinary way on 20014 and 20015: a configured port goes to
// its app even so, and a configured port whose slot has no socket is refused
// rather than left to the bystander.
const bystanders = await Promise.all([20014, 20015].map(async (port) => {
  const server = net.createServer((sock) => sock.end(`bystander:${sock.localPort}`));
  server.listen({ host: "::", port, ipv6Only: false });
  await once(server, "listening");
  return server;
}));
s.setPorts(everywhere(20015, 0));
const overBystander = await dialAll(20015);
s.setPorts(everywhere(20014, 3));
const missingSocket = await dialAll(20014);
for (const x of bystanders) await new Promise((r) => x.close(r));
const removed = s.removeAppSocket(0);
const removedAgain = s.removeAppSocket(0);
const afterRemove = await dialAll(20003);
const countersAtEnd = Object.fromEntries(s.counters());

// Detach: the kernel's own lookup again (nothing listens on 20006); attach again.
const detached = s.detach();
const detachedAgain = s.detach();
const detach = { detached, detachedAgain, linkInfo: s.linkInfo(), links: netnsLinks(ino).length, dialled: await dialAll(20006) };
s.attach();
const reattached = await dialAll(20006);

const linksBeforeClose = netnsLinks(ino);
s.close();
s.close(); // idempotent
const linksAfterClose = netnsLinks(ino);
errors.afterClose = errorOf(() => s.linkInfo());
const afterClose = await dialAll(20006);

for (const x of [a, b, c]) if (x) await new Promise((r) => x.server.close(r));

// Load, attach, close again: no fd left behind.
const fdsBeforeCycle = openFds();
const s2 = loadSteering();
s2.attach();
s2.close();
const fdsAfterCycle = openFds();

emit({
  ipv6,
  netnsIno: ino,
  link,
  bound: { a: a.bound, b: b.bound, c: c?.bound ?? null },
  errors,
  countersAtStart,
  rangeEntries: range.length,
  rangeSetMs,
  tenPorts,
  rangeSample,
  unconfigured,
  countersAfterDials,
  deleted,
  deletedAgain,
  afterDelete,
  afterMove,
  longestPrefix,
  v6only,
  overBystander,
  missingSocket,
  removed,
  removedAgain,
  afterRemove,
  countersAtEnd,
  detach,
  reattached,
  linksBeforeClose,
  linksAfterClose,
  afterClose,
  fds: { atStart: fdsAtStart, afterFailedLoad: fdsAfterFailedLoad, beforeCycle: fdsBeforeCycle, afterCycle: fdsAfterCycle },
});
