// The /proc/net/tcp{,6} parser and the conflict rule BPF mode uses to refuse a
// port another socket listens on (supervisor/listeners/listening-sockets.ts,
// supervisor/listeners/listen-conflicts.ts). No BPF: fixture text, plus real loopback
// listeners to tie the parser to this kernel's byte order and inode numbers.
import test from "ava";

import { planPrefix } from "../config/addresses.js";
import { closeFd, listenTcp, socketInode } from "../native/index.js";
import { ConflictReport, ListenerIndex } from "../supervisor/listeners/listen-conflicts.js";
import { listeningSockets, parseProcNetTcp, type ListeningSocket } from "../supervisor/listeners/listening-sockets.js";

const HEAD4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
const HEAD6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
const line = (sl: number, local: string, remote: string, st: string, inode: number): string =>
  `  ${sl}: ${local} ${remote} ${st} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0`;

// As a little-endian kernel prints them: each 32-bit word of the address in host order.
const TCP4_LE = [
  HEAD4,
  line(0, "0100007F:1E61", "00000000:0000", "0A", 101), // 127.0.0.1:7777
  line(1, "00000000:0016", "00000000:0000", "0A", 102), // 0.0.0.0:22
  line(2, "0302010A:0050", "0100007F:D431", "01", 103), // 10.1.2.3:80, established
  line(3, "0100007F:1E62", "0100007F:D432", "06", 0), // time-wait
  "",
].join("\n");

const Z = "00000000";
const TCP6_LE = [
  HEAD6,
  line(0, `${Z}${Z}${Z}01000000:1E61`, `${Z}${Z}${Z}${Z}:0000`, "0A", 201), // ::1:7777
  line(1, `${Z}${Z}${Z}${Z}:0050`, `${Z}${Z}${Z}${Z}:0000`, "0A", 202), // [::]:80
  line(2, `${Z}${Z}FFFF00000100007F:1F90`, `${Z}${Z}${Z}${Z}:0000`, "0A", 203), // [::ffff:127.0.0.1]:8080
  line(3, `B80D0120${Z}${Z}78563412:01BB`, `${Z}${Z}${Z}${Z}:0000`, "0A", 204), // [2001:db8::1234:5678]:443
  line(4, `${Z}${Z}${Z}01000000:1E61`, `${Z}${Z}${Z}01000000:C000`, "01", 205), // established
  "",
].join("\n");

const brief = (list: ListeningSocket[]): string[] => list.map((s) => `${s.key} ${s.inode}`);

test("IPv4: LISTEN lines only, words in little-endian host order", (t) => {
  t.deepEqual(brief(parseProcNetTcp(TCP4_LE, true)), ["127.0.0.1:7777 101", "0.0.0.0:22 102"]);
  t.deepEqual(parseProcNetTcp(TCP4_LE, true)[0], { address: "127.0.0.1", port: 7777, inode: 101, key: "127.0.0.1:7777" });
});

test("IPv4 as a big-endian kernel prints it", (t) => {
  const be = [HEAD4, line(0, "7F000001:1E61", "00000000:0000", "0A", 7)].join("\n");
  t.deepEqual(brief(parseProcNetTcp(be, false)), ["127.0.0.1:7777 7"]);
});

test("IPv6: loopback, wildcard, v4-mapped, word order; LISTEN lines only", (t) => {
  t.deepEqual(brief(parseProcNetTcp(TCP6_LE, true)), [
    "[::1]:7777 201",
    "[::]:80 202",
    "[::ffff:127.0.0.1]:8080 203",
    "[2001:db8::1234:5678]:443 204",
  ]);
  const be = [HEAD6, line(0, `20010DB8${Z}${Z}12345678:01BB`, `${Z}${Z}${Z}${Z}:0000`, "0A", 9)].join("\n");
  t.deepEqual(brief(parseProcNetTcp(be, false)), ["[2001:db8::1234:5678]:443 9"]);
});

test("the listeners end at the first socket in another state: the kernel prints them first", (t) => {
  const text = [HEAD4, line(0, "0100007F:1E61", "00000000:0000", "0A", 1), line(1, "0100007F:1E61", "0100007F:D431", "01", 2), line(2, "0100007F:1E62", "00000000:0000", "0A", 3)].join("\n");
  t.deepEqual(brief(parseProcNetTcp(text, true)), ["127.0.0.1:7777 1"]);
});

test("garbage and truncated lines are skipped", (t) => {
  const text = [HEAD4, "   0: 0100007F:1E61 00000000:0000 0A", line(1, "XYZ:1E61", "00000000:0000", "0A", 1), line(2, "0100007F:1E61", "00000000:0000", "0A", 3)].join("\n");
  t.deepEqual(brief(parseProcNetTcp(text, true)), ["127.0.0.1:7777 3"]);
});

test("this kernel's files: real loopback listeners appear with the inode socketInode() reports", (t) => {
  const fds = [listenTcp("127.0.0.1", 0, 16), listenTcp("::ffff:127.0.0.1", 0, 16, { v6only: false })];
  let v6: number | undefined;
  try {
    v6 = listenTcp("::1", 0, 16);
    fds.push(v6);
  } catch {
    t.log("no IPv6 loopback here: ::1 not checked");
  }
  t.teardown(() => fds.forEach(closeFd));
  const listed = new Map(listeningSockets().map((s) => [s.inode, s]));
  const expect = ["127.0.0.1", "::ffff:127.0.0.1", "::1"];
  fds.forEach((fd, i) => {
    const s = listed.get(socketInode(fd));
    t.truthy(s, `${expect[i]} not listed`);
    t.is(s?.address, expect[i]);
  });
});

const sock = (address: string, port: number, inode = 1): ListeningSocket => ({
  address,
  port,
  inode,
  key: address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`,
});
const V4_ALL = planPrefix("0.0.0.0/0");
const V6_ALL = planPrefix("::/0");

test("conflict rule: wildcards, prefixes, v4-mapped, families", (t) => {
  const index = new ListenerIndex(
    [sock("127.0.0.1", 1), sock("0.0.0.0", 2), sock("::", 3), sock("::ffff:10.0.0.5", 4), sock("::1", 5), sock("fd00::7", 6)],
    new Set(),
  );
  const robbed = (prefix: string, port: number): string | undefined => index.robbed(planPrefix(prefix), port)?.key;
  t.is(robbed("0.0.0.0/0", 1), "127.0.0.1:1");
  t.is(robbed("127.0.0.0/8", 1), "127.0.0.1:1");
  t.is(robbed("10.0.0.0/8", 1), undefined, "outside the prefix");
  t.is(robbed("::/0", 1), undefined, "an IPv4 listener takes no IPv6");
  t.is(robbed("10.9.9.9/32", 2), "0.0.0.0:2", "0.0.0.0 takes every IPv4 address");
  t.is(robbed("::/0", 2), undefined);
  t.is(robbed("10.9.9.9/32", 3), "[::]:3", ":: may be dual-stack");
  t.is(robbed("fd00::/64", 3), "[::]:3");
  t.is(robbed("10.0.0.0/24", 4), "[::ffff:10.0.0.5]:4", "v4-mapped counts as IPv4");
  t.is(robbed("::/0", 4), undefined);
  t.is(robbed("::/0", 5), "[::1]:5");
  t.is(robbed("0.0.0.0/0", 5), undefined);
  t.is(robbed("fd00::/64", 6), "[fd00::7]:6");
  t.is(robbed("fd01::/64", 6), undefined);
  t.is(robbed("0.0.0.0/0", 7), undefined, "nobody listens on 7");
});

test("our own app sockets are not conflicts", (t) => {
  const index = new ListenerIndex([sock("::ffff:127.0.0.1", 40000, 77), sock("127.0.0.1", 40001, 78)], new Set([77]));
  t.is(index.robbed(V4_ALL, 40000), undefined);
  t.is(index.robbed(V4_ALL, 40001)?.key, "127.0.0.1:40001");
});

test("the report reads like ports mode's EADDRINUSE and stays short", (t) => {
  const one = new ConflictReport();
  t.true(one.empty);
  one.add(sock("127.0.0.1", 7777), "a");
  one.add(sock("127.0.0.1", 7777), "a");
  t.false(one.empty);
  t.is(one.message(), "cannot listen on 127.0.0.1:7777 (app a): EADDRINUSE (another socket listens there)");
  t.regex(one.message(), /cannot listen on .*EADDRINUSE/);

  const many = new ConflictReport();
  for (let p = 1; p <= 20_000; p++) many.add(sock("0.0.0.0", p), "big");
  t.is(many.message(), "cannot listen on 0.0.0.0:1 (app big): EADDRINUSE (another socket listens there); also 0.0.0.0:2 (app big), 0.0.0.0:3 (app big) and 19997 more");
});
