// BPF steering (native/bpf.c, native/steering.bpf.c, native/steering.ts).
// The BPF parts run in scenario processes inside a fresh network namespace
// (`unshare -n`), never in this one; each prints one JSON object asserted here.
import test, { type ExecutionContext } from "ava";

import { addon } from "../native/index.js";
import {
  STEER_KEY_SIZE,
  STEER_PORT_ENTRY_SIZE,
  STEER_SOCKETS_MAX,
  encodePortEntries,
  parsePrefix,
} from "../native/steering.js";
import { hostNetnsIno, scenarioResult } from "./helpers/netns.js";

// ---- key layout (no BPF needed) -------------------------------------------------

test("key sizes in steering.ts match the addon's steering.h", (t) => {
  const native = addon as unknown as Record<string, number>;
  t.is(native.sizeofSteerKey, STEER_KEY_SIZE);
  t.is(native.sizeofSteerPortEntry, STEER_PORT_ENTRY_SIZE);
  t.is(native.steerSocketsMax, STEER_SOCKETS_MAX);
  t.is(native.steerCounterFields, 3);
});

test("an IPv4 binding packs as struct steer_port_entry", (t) => {
  const buf = encodePortEntries([{ family: 4, prefix: "10.1.2.3/8", port: 0x1234, slot: 7 }]);
  const expected = Buffer.alloc(28);
  expected.writeUInt32LE(32 + 8, 0); // prefixlen: port+family+pad, then 8 address bits
  expected.writeUInt16LE(0x1234, 4); // port in host order (x86)
  expected[6] = 4;
  expected[8] = 10; // masked to /8
  expected.writeUInt32LE(7, 24);
  t.deepEqual(buf, expected);
});

test("an IPv6 binding packs the address in network order, masked", (t) => {
  const buf = encodePortEntries([{ family: 6, prefix: "2001:db8:ffff::1/36", port: 443, slot: 4095 }]);
  t.is(buf.readUInt32LE(0), 32 + 36);
  t.is(buf.readUInt16LE(4), 443);
  t.is(buf[6], 6);
  t.is(buf.subarray(8, 24).toString("hex"), "20010db8f0000000" + "0".repeat(16));
  t.is(buf.readUInt32LE(24), 4095);
  t.is(parsePrefix("::ffff:1.2.3.4", 6).bytes.toString("hex"), "00000000000000000000ffff01020304");
  t.deepEqual(parsePrefix("::/0", 6), { bytes: Buffer.alloc(16), bits: 0 });
});

test("invalid bindings are refused before reaching the addon", (t) => {
  const bad = [
    { family: 4 as const, prefix: "10.0.0.0/33", port: 1, slot: 0 },
    { family: 4 as const, prefix: "::/0", port: 1, slot: 0 },
    { family: 6 as const, prefix: "10.0.0.0/8", port: 1, slot: 0 },
    { family: 4 as const, prefix: "10.0.0.0/8", port: 0, slot: 0 },
    { family: 4 as const, prefix: "10.0.0.0/8", port: 65536, slot: 0 },
    { family: 4 as const, prefix: "10.0.0.0/8", port: 1, slot: STEER_SOCKETS_MAX },
    { family: 5 as unknown as 4, prefix: "10.0.0.0/8", port: 1, slot: 0 },
  ];
  for (const b of bad) {
    const err = t.throws(() => encodePortEntries([b]), { instanceOf: RangeError }, JSON.stringify(b));
    t.is((err as RangeError & { code?: string } | undefined)?.code, "ERR_INVALID_ARG_VALUE");
  }
});

// ---- in a network namespace --------------------------------------------------------

type Dialled = string[];
interface Counters {
  steered: number;
  missingSocket: number;
  assignFailed: number;
}
interface ErrorInfo {
  code?: string;
  syscall?: string;
  message: string;
}
interface Basic {
  ipv6: boolean;
  netnsIno: number;
  link: { id: number; progId: number; netnsIno: number } | null;
  bound: { a: string; b: string; c: string | null };
  errors: Record<string, ErrorInfo>;
  countersAtStart: Record<string, Counters>;
  rangeEntries: number;
  rangeSetMs: number;
  tenPorts: Record<string, Dialled>;
  rangeSample: Record<string, Dialled>;
  unconfigured: Dialled;
  countersAfterDials: Record<string, Counters>;
  deleted: number;
  deletedAgain: number;
  afterDelete: Dialled;
  afterMove: Dialled;
  longestPrefix: Record<string, string>;
  v6only: { dialled: Dialled; counters: Counters } | null;
  overBystander: Dialled;
  missingSocket: Dialled;
  removed: boolean;
  removedAgain: boolean;
  afterRemove: Dialled;
  countersAtEnd: Record<string, Counters>;
  detach: { detached: boolean; detachedAgain: boolean; linkInfo: unknown; links: number; dialled: Dialled };
  reattached: Dialled;
  linksBeforeClose: { id: number; prog_id: number }[];
  linksAfterClose: unknown[];
  afterClose: Dialled;
  fds: { atStart: number; afterFailedLoad: number; beforeCycle: number; afterCycle: number };
}

// One scenario run, asserted on by the tests below.
let basicRun: Promise<Basic> | undefined;
const basic = (t: ExecutionContext): Promise<Basic> => (basicRun ??= scenarioResult<Basic>(t, "steering-basic"));

/** What dialAll() reports for every family the scenario had. */
const everyFamily = (r: Basic, what: string): Dialled => (r.ipv6 ? [4, 6] : [4]).map((f) => `${f}:${what}`);
const refused = (r: Basic): Dialled => everyFamily(r, "error:ECONNREFUSED");

test.serial("attaches to the scenario's own namespace, one link", async (t) => {
  const r = await basic(t);
  t.true(r.ipv6, "IPv6 on lo in a fresh namespace");
  t.not(r.netnsIno, hostNetnsIno);
  t.truthy(r.link);
  t.is(r.link?.netnsIno, r.netnsIno);
  t.is(r.linksBeforeClose.length, 1);
  t.is(r.linksBeforeClose[0]?.prog_id, r.link?.progId);
  t.regex(r.bound.a, /^::ffff:127\.0\.0\.1:\d+$/);
});

test.serial("ten ports and a 10,000-port batch reach their app with the dialled port", async (t) => {
  const r = await basic(t);
  for (let p = 20001; p <= 20010; p++) t.deepEqual(r.tenPorts[p], everyFamily(r, `${p <= 20005 ? "a" : "b"}:${p}`), `port ${p}`);
  for (const p of [30000, 34567, 39999]) t.deepEqual(r.rangeSample[p], everyFamily(r, `b:${p}`), `port ${p}`);
  t.is(r.rangeEntries, 10_000 * (r.ipv6 ? 2 : 1));
  t.true(r.rangeSetMs < 2000, `setPorts of ${r.rangeEntries} entries took ${r.rangeSetMs} ms`);
  t.deepEqual(r.unconfigured, refused(r));
});

test.serial("counters count exactly the steered connections per slot", async (t) => {
  const r = await basic(t);
  const fams = r.ipv6 ? 2 : 1;
  t.deepEqual(r.countersAtStart, {});
  t.deepEqual(r.countersAfterDials, {
    0: { steered: 5 * fams, missingSocket: 0, assignFailed: 0 },
    1: { steered: 5 * fams + 3 * fams, missingSocket: 0, assignFailed: 0 },
  });
});

test.serial("deleting, moving and a longer prefix change where a port goes", async (t) => {
  const r = await basic(t);
  t.is(r.deleted, r.ipv6 ? 2 : 1);
  t.is(r.deletedAgain, 0);
  t.deepEqual(r.afterDelete, refused(r));
  t.deepEqual(r.afterMove, everyFamily(r, "b:20002"));
  t.deepEqual(r.longestPrefix, { "127.0.0.1": "b:20012", "127.0.0.2": "a:20012" });
});

test.serial("a slot without a socket, or a socket that cannot take the family, refuses and counts", async (t) => {
  const r = await basic(t);
  const fams = r.ipv6 ? 2 : 1;
  t.deepEqual(r.overBystander, everyFamily(r, "a:20015"), "steering wins over an ordinary listener");
  t.deepEqual(r.missingSocket, refused(r), "no socket in the slot: refused, not given to the ordinary listener");
  t.true(r.removed);
  t.false(r.removedAgain);
  t.deepEqual(r.afterRemove, refused(r));
  // [::1] makes an AF_INET6 socket IPv6-only: IPv4 is refused by bpf_sk_assign.
  if (r.ipv6) t.deepEqual(r.v6only, { dialled: ["4:error:ECONNREFUSED", "6:c:20013"], counters: { steered: 1, missingSocket: 0, assignFailed: 1 } });
  t.deepEqual(r.countersAtEnd[3], { steered: 0, missingSocket: fams, assignFailed: 0 });
  t.deepEqual(r.countersAtEnd[0], { steered: 5 * fams + 1 + fams, missingSocket: fams, assignFailed: 0 });
  t.deepEqual(r.countersAtEnd[1], { steered: 8 * fams + fams + 1, missingSocket: 0, assignFailed: 0 });
});

test.serial("detach() hands ports back to the kernel's lookup; attach() again steers", async (t) => {
  const r = await basic(t);
  t.deepEqual(r.detach, { detached: true, detachedAgain: false, linkInfo: null, links: 0, dialled: refused(r) });
  t.deepEqual(r.reattached, everyFamily(r, "b:20006"));
});

test.serial("close() detaches the link and leaves no fd behind", async (t) => {
  const r = await basic(t);
  t.deepEqual(r.linksAfterClose, []);
  t.deepEqual(r.afterClose, refused(r));
  t.is(r.fds.afterFailedLoad, r.fds.atStart);
  t.is(r.fds.afterCycle, r.fds.beforeCycle);
  t.is(r.errors.afterClose?.code, "ERR_STEERING_CLOSED");
});

test.serial("failures throw errors with code and syscall", async (t) => {
  const { errors } = await basic(t);
  t.like(errors.missingObject, { code: "ENOENT", syscall: "bpf_object__open_file" });
  t.regex(errors.missingObject?.message ?? "", /libbpf: /, "libbpf's own message is part of the error");
  t.like(errors.attachTwice, { code: "ERR_STEERING_ATTACHED" });
  t.like(errors.slotOutOfRange, { code: "ERR_OUT_OF_RANGE" });
  t.like(errors.badFd, { code: "EBADF", syscall: "bpf_map_update_elem" });
  t.like(errors.notASocket, { code: "ENOTSOCK", syscall: "bpf_map_update_elem" });
  t.like(errors.badPrefix, { code: "ERR_INVALID_ARG_VALUE" });
});

test("without CAP_BPF/CAP_NET_ADMIN/CAP_SYS_ADMIN, bpfAvailable() says no and why", async (t) => {
  const r = await scenarioResult<{
    capEff: string;
    availability: { ok: boolean; reason?: string };
    load: ErrorInfo;
    fds: { before: number; after: number };
  }>(t, "steering-noperm", { dropCaps: true });
  const eff = BigInt(`0x${r.capEff}`);
  for (const bit of [12n, 21n, 38n, 39n]) t.is((eff >> bit) & 1n, 0n, `capability ${bit} still effective`);
  t.false(r.availability.ok);
  t.regex(r.availability.reason ?? "", /^bpf_object__load: EPERM \(needs CAP_BPF/);
  t.like(r.load, { code: "EPERM", syscall: "bpf_object__load" });
  t.is(r.fds.after, r.fds.before);
});
