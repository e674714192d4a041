// Handing the BPF steering over to another process (native/bpf.c: exportFds,
// Steering.load with inherited fds, release, portEntries), datagram unix
// sockets for sd_notify with fds (native/notify.c) and memfdCreate.
//
// The BPF part must run in a network namespace of its own, never this one. This
// file is its own scenario: the test starts it again under `unshare -n` with
// SWITCHYARD_HANDOVER_SCENARIO=1, and there it runs handover() and prints one
// JSON line instead of declaring tests. ava is imported only in the test run
// (it refuses to load outside its own workers).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readlinkSync, rmSync, writeSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import type { ExecutionContext, TestFn } from "ava";

import { unixSocketPath } from "../common/unix-path.js";
import {
  closeFd,
  listenTcp,
  memfdCreate,
  recvDatagram,
  sendDatagram,
  socketInode,
  socketPair,
  unixDgramSocket,
} from "../native/index.js";
import { type LinkInfo, type PortBinding, Steering } from "../native/steering.js";
import { describeFdChange, fdTable } from "./helpers/fd-table.js";
import { hostNetnsIno } from "./helpers/netns.js";
import { deadline, dial, emit, errorOf, netnsIno, netnsLinks, requireIsolatedNetns } from "./scenarios/steering-lib.js";

type ErrorInfo = ReturnType<typeof errorOf>;

/** O_CLOEXEC in /proc/self/fdinfo's octal flags. */
const cloexec = (fd: number): boolean =>
  (parseInt(/^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1] ?? "0", 8) & 0o2000000) !== 0;
const fdTarget = (fd: number): string => readlinkSync(`/proc/self/fd/${fd}`);
const byKey = (a: PortBinding, b: PortBinding): number =>
  `${a.family} ${a.port} ${a.prefix}`.localeCompare(`${b.family} ${b.port} ${b.prefix}`);

// ---- the scenario, inside `unshare -n` -----------------------------------------------

interface Handover {
  exported: { targets: string[]; cloexec: boolean[]; distinct: boolean };
  notify: { data: string; pid: number; ourPid: number; fds: number; cloexec: boolean[] };
  linkA: LinkInfo | null;
  linkB: LinkInfo | null;
  linkAAfterSwap: LinkInfo | null;
  errors: Record<string, ErrorInfo>;
  fdsAfterFailedLoads: string;
  dialled: Record<string, string>;
  seenByA: PortBinding[];
  roundTrip: PortBinding[];
  mapsOnly: { linkInfo: LinkInfo | null; exportedLink: number | null; entries: number };
  steeredBySlot0: number | undefined;
  linksAfterRelease: { id: number; prog_id: number }[];
  linksAfterClose: { id: number; prog_id: number }[];
  fdsAtEnd: string;
}

async function handover(): Promise<never> {
  requireIsolatedNetns();
  deadline(60_000);
  const ino = netnsIno();
  const [errors, dialled]: [Record<string, ErrorInfo>, Record<string, string>] = [{}, {}];

  // The app: a listener on an ephemeral port; steering brings it ports 20100-20102.
  const appFd = listenTcp("127.0.0.1", 0, 511);
  const server = net.createServer((sock) => sock.end(`app:${sock.localPort}`));
  server.listen({ fd: appFd });
  await once(server, "listening");
  dialled.unsteered = await dial("127.0.0.1", 20100);
  const fdsAtStart = fdTable(process.pid);

  // The old process's steering.
  const a = Steering.load();
  a.attach();
  a.setAppSocket(0, appFd);
  a.setPorts([{ family: 4, prefix: "127.0.0.0/8", port: 20100, slot: 0 }]);
  const linkA = a.linkInfo();
  dialled.byA = await dial("127.0.0.1", 20100);

  // Its fds, sent the way they would go to systemd's fd store: one datagram.
  const ex = a.exportFds();
  const exportedFds = [ex.link ?? -1, ex.sockets, ex.ports, ex.counters];
  const distinct = new Set(exportedFds).size === 4 && exportedFds.every((fd) => fd > 2);
  const exported = { targets: exportedFds.map(fdTarget), cloexec: exportedFds.map(cloexec), distinct };
  const store = `@switchyard-handover-${process.pid}`;
  const [rx, tx] = [unixDgramSocket(store), unixDgramSocket()];
  sendDatagram(tx, store, Buffer.from("FDSTORE=1\nFDNAME=steering"), exportedFds);
  exportedFds.forEach(closeFd);
  const msg = recvDatagram(rx, 4096, 8);
  [rx, tx].forEach(closeFd);
  if (msg === null || msg.fds.length !== 4) throw new Error(`fd store datagram: ${JSON.stringify(msg)}`);
  const notify = { data: msg.data.toString(), pid: msg.pid, ourPid: process.pid, fds: msg.fds.length, cloexec: msg.fds.map(cloexec) };
  const [link, sockets, ports, counters] = msg.fds as [number, number, number, number];

  // What must not load: every failure leaves no fd behind and the old steering intact.
  const fdsBeforeFailedLoads = fdTable(process.pid);
  const devNull = openSync("/dev/null", "r");
  errors.countersAsPorts = errorOf(() => Steering.load(undefined, { link, sockets, ports: counters, counters }));
  errors.portsAsSockets = errorOf(() => Steering.load(undefined, { link, sockets: ports, ports, counters }));
  errors.mapAsLink = errorOf(() => Steering.load(undefined, { link: sockets, sockets, ports, counters }));
  errors.notBpf = errorOf(() => Steering.load(undefined, { link, sockets, ports, counters: devNull }));
  errors.missingMap = errorOf(() => Steering.load(undefined, { link, sockets, ports } as unknown as Parameters<typeof Steering.load>[1]));
  closeSync(devNull);
  const fdsAfterFailedLoads = describeFdChange(fdsBeforeFailedLoads, fdTable(process.pid));

  // The new process's steering on the same maps, its program swapped into the same link.
  const b = Steering.load(undefined, { link, sockets, ports, counters });
  msg.fds.forEach(closeFd); // still ours: b holds dups
  const linkB = b.linkInfo();
  const linkAAfterSwap = a.linkInfo();
  errors.attachAdopted = errorOf(() => b.attach());
  dialled.afterSwap = await dial("127.0.0.1", 20100);

  // Shared maps: b's edits are a's entries.
  b.setPorts([
    { family: 4, prefix: "127.0.0.2", port: 20101, slot: 0 },
    { family: 6, prefix: "2001:db8:0:0:1::/80", port: 20102, slot: 0 },
    { family: 6, prefix: "::1", port: 20102, slot: 0 },
    { family: 6, prefix: "::ffff:10.1.2.3/120", port: 20102, slot: 7 },
  ]);
  const seenByA = a.portEntries().sort(byKey);
  dialled.addedByB = await dial("127.0.0.2", 20101);
  b.setPorts(seenByA);
  const roundTrip = b.portEntries().sort(byKey);

  // The maps without the link: a third steering that is not attached and, closed, takes nothing away.
  const exB = b.exportFds();
  const c = Steering.load(undefined, { sockets: exB.sockets, ports: exB.ports, counters: exB.counters });
  [exB.link ?? -1, exB.sockets, exB.ports, exB.counters].forEach(closeFd);
  const exC = c.exportFds();
  [exC.sockets, exC.ports, exC.counters].forEach(closeFd);
  const mapsOnly = { linkInfo: c.linkInfo(), exportedLink: exC.link, entries: c.portEntries().length };
  c.close();
  dialled.afterMapsOnlyClose = await dial("127.0.0.1", 20100);
  const steeredBySlot0 = b.counters(1).get(0)?.steered;

  // The old process lets go: the link stays, with b's program.
  a.release();
  errors.afterRelease = errorOf(() => a.linkInfo());
  a.release();
  a.close(); // after release(): nothing left to detach
  dialled.afterRelease = await dial("127.0.0.1", 20100);
  const linksAfterRelease = netnsLinks(ino);

  b.close();
  dialled.afterClose = await dial("127.0.0.1", 20100);
  const linksAfterClose = netnsLinks(ino);
  const fdsAtEnd = describeFdChange(fdsAtStart, fdTable(process.pid));
  server.close();

  emit({
    exported, notify, linkA, linkB, linkAAfterSwap, errors, fdsAfterFailedLoads, dialled, seenByA, roundTrip,
    mapsOnly, steeredBySlot0, linksAfterRelease, linksAfterClose, fdsAtEnd,
  } satisfies Handover);
}

// ---- the tests ----------------------------------------------------------------------

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** This file as the scenario in a fresh network namespace with lo up; its JSON line. */
function runScenario(t: ExecutionContext): Promise<Handover> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn("unshare", ["-n", "sh", "-c", `ip link set lo up && exec ${quote(process.execPath)} ${quote(self)}`], {
    env: { ...process.env, SWITCHYARD_HANDOVER_SCENARIO: "1", SWITCHYARD_HOST_NETNS_INO: String(hostNetnsIno) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(JSON.parse(stdout.trim().split("\n").pop() ?? "") as Handover);
      else reject(new Error(`scenario exited ${code}\nstdout: ${stdout}\nstderr: ${stderr.slice(-4000)}`));
    });
  });
}

function declareTests(test: TestFn): void {
  let run: Promise<Handover> | undefined;
  const scenario = (t: ExecutionContext): Promise<Handover> => (run ??= runScenario(t));

  // The ones below run in this process: no BPF, and synchronous, so that the
  // fd table read before and after is theirs alone (serial tests run first).
  const noLeak = (t: ExecutionContext, fn: () => void): void => {
    const before = fdTable(process.pid);
    fn();
    const after = fdTable(process.pid);
    t.is(after.size, before.size, describeFdChange(before, after));
  };

  test.serial("a datagram to a bound socket carries text, two working fds and the sender's pid", (t) => {
    noLeak(t, () => {
      const dir = mkdtempSync(join(tmpdir(), "sy-notify-"));
      const path = join(dir, "notify");
      const rx = unixDgramSocket(path);
      const tx = unixDgramSocket();
      const [p0, p1] = socketPair();
      sendDatagram(tx, path, Buffer.from("FDSTORE=1\nFDNAME=pair"), [p0, p1]);
      const got = recvDatagram(rx, 4096, 4);
      t.truthy(got);
      if (got === null) return;
      t.is(got.data.toString(), "FDSTORE=1\nFDNAME=pair");
      t.is(got.pid, process.pid);
      t.is(got.fds.length, 2);
      const [r0 = -1, r1 = -1] = got.fds;
      t.true(![p0, p1].includes(r0) && ![p0, p1].includes(r1), "new fds, not the sent numbers");
      t.deepEqual([socketInode(r0), socketInode(r1)], [socketInode(p0), socketInode(p1)]);
      t.deepEqual(got.fds.map(cloexec), [true, true]);
      // The received ends work: written through one, read through the other.
      writeSync(r0, "ping");
      const buf = Buffer.alloc(16);
      t.is(buf.toString("utf8", 0, readSync(r1, buf)), "ping");
      t.is(recvDatagram(rx, 4096, 4), null, "one datagram, read once");
      [rx, tx, p0, p1, r0, r1].forEach(closeFd);
      rmSync(dir, { recursive: true });
    });
  });

  test.serial("\"@name\" is the abstract namespace; an empty socket answers null", (t) => {
    noLeak(t, () => {
      const name = `switchyard-test-${process.pid}-${Date.now()}`;
      const rx = unixDgramSocket(`@${name}`);
      const tx = unixDgramSocket();
      // /proc/net/unix shows an abstract name's leading NUL as "@".
      t.regex(readFileSync("/proc/net/unix", "utf8"), new RegExp(` @${name}\\n`));
      t.is(recvDatagram(rx, 4096, 4), null);
      sendDatagram(tx, `@${name}`, Buffer.from("READY=1"), []);
      sendDatagram(tx, `@${name}`, Buffer.from(`MAINPID=${process.pid}`), []);
      t.deepEqual(recvDatagram(rx, 4096, 0), { data: Buffer.from("READY=1"), fds: [], pid: process.pid });
      t.deepEqual(recvDatagram(rx, 4096, 0), { data: Buffer.from(`MAINPID=${process.pid}`), fds: [], pid: process.pid });
      t.is(recvDatagram(rx, 4096, 0), null);
      [rx, tx].forEach(closeFd);
    });
  });

  test.serial("more fds than maxFds, or more bytes than maxBytes: EMSGSIZE and every fd that came is closed", (t) => {
    noLeak(t, () => {
      const name = `@switchyard-test-${process.pid}-trunc`;
      const rx = unixDgramSocket(name);
      const tx = unixDgramSocket();
      const pair = socketPair();
      const beforeRecv = fdTable(process.pid).size;
      for (const maxFds of [0, 1]) {
        sendDatagram(tx, name, Buffer.from("FDSTORE=1"), [...pair, pair[0]]);
        const err = t.throws(() => recvDatagram(rx, 4096, maxFds)) as NodeJS.ErrnoException;
        t.like(err, { code: "EMSGSIZE", syscall: "recvmsg" }, `maxFds ${maxFds}`);
        t.is(fdTable(process.pid).size, beforeRecv, `maxFds ${maxFds}: nothing left open`);
      }
      sendDatagram(tx, name, Buffer.from("0123456789"), [pair[0]]);
      t.like(t.throws(() => recvDatagram(rx, 9, 4)), { code: "EMSGSIZE", syscall: "recvmsg" });
      t.is(fdTable(process.pid).size, beforeRecv);
      t.is(recvDatagram(rx, 4096, 4), null, "the refused datagrams are gone");
      [rx, tx, ...pair].forEach(closeFd);
    });
  });

  test.serial("a receiver whose queue is full: a non-blocking sender gets EAGAIN", (t) => {
    noLeak(t, () => {
      const name = `@switchyard-test-${process.pid}-full`;
      const rx = unixDgramSocket(name);
      const tx = unixDgramSocket();
      let sent = 0;
      let err: unknown;
      try {
        for (; sent < 100_000; sent++) sendDatagram(tx, name, Buffer.from("WATCHDOG=1"), []);
      } catch (e) {
        err = e;
      }
      t.like(err, { code: "EAGAIN", syscall: "sendmsg" });
      let received = 0;
      while (recvDatagram(rx, 64, 0) !== null) received++;
      t.is(received, sent, "everything sent before EAGAIN arrived");
      t.true(sent > 0);
      [rx, tx].forEach(closeFd);
    });
  });

  test.serial("socket paths: too long, empty, missing, and the /proc/self/fd form of a long one", (t) => {
    noLeak(t, () => {
      t.like(t.throws(() => unixDgramSocket(`/tmp/${"x".repeat(103)}`)), { code: "ENAMETOOLONG", syscall: "bind" });
      t.like(t.throws(() => unixDgramSocket(`@${"x".repeat(108)}`)), { code: "ENAMETOOLONG", syscall: "bind" });
      t.like(t.throws(() => unixDgramSocket("@")), { code: "EINVAL", syscall: "bind" });
      t.like(t.throws(() => unixDgramSocket("")), { code: "EINVAL", syscall: "bind" });
      t.like(t.throws(() => unixDgramSocket("/tmp/a\0b")), { code: "ERR_INVALID_ARG_TYPE" });
      const tx = unixDgramSocket();
      t.like(t.throws(() => sendDatagram(tx, "/nonexistent/notify", Buffer.from("READY=1"), [])), { code: "ENOENT", syscall: "sendmsg" });
      t.like(t.throws(() => sendDatagram(tx, "@x", Buffer.alloc(0), [])), { code: "EINVAL", syscall: "sendmsg" });
      t.like(t.throws(() => sendDatagram(tx, "@x", Buffer.from("x"), new Array<number>(254).fill(0))), { code: "EINVAL", syscall: "sendmsg" });

      // A directory whose socket path does not fit sun_path, reached through an fd of it.
      const base = mkdtempSync(join(tmpdir(), "sy-notify-"));
      const dir = join(base, "d".repeat(120));
      mkdirSync(dir);
      const where = unixSocketPath(dir, "notify");
      t.regex(where.path, /^\/proc\/self\/fd\/\d+\/notify$/);
      const rx = unixDgramSocket(where.path);
      sendDatagram(tx, where.path, Buffer.from("READY=1"), []);
      where.release();
      t.is(recvDatagram(rx, 64, 0)?.data.toString(), "READY=1");
      [rx, tx].forEach(closeFd);
      rmSync(base, { recursive: true });
    });
  });

  test.serial("memfdCreate: a close-on-exec memfd that reads back through /proc/self/fd", (t) => {
    noLeak(t, () => {
      const fd = memfdCreate("switchyard-state");
      const state = JSON.stringify({ generation: 3, slots: [0, 1] });
      t.is(writeSync(fd, state), Buffer.byteLength(state));
      t.is(readFileSync(`/proc/self/fd/${fd}`, "utf8"), state);
      t.regex(fdTarget(fd), /^\/memfd:switchyard-state \(deleted\)$/);
      t.true(cloexec(fd));
      closeFd(fd);
      t.like(t.throws(() => memfdCreate("x".repeat(250))), { code: "EINVAL", syscall: "memfd_create" });
      t.like(t.throws(() => memfdCreate("a\0b")), { code: "ERR_INVALID_ARG_TYPE" });
    });
  });

  // ---- in a network namespace ----

  test("exported fds are close-on-exec dups of the link and maps, and travel in one notify datagram", async (t) => {
    const r = await scenario(t);
    t.deepEqual(r.exported.targets, ["anon_inode:bpf_link", "anon_inode:bpf-map", "anon_inode:bpf-map", "anon_inode:bpf-map"]);
    t.deepEqual(r.exported.cloexec, [true, true, true, true]);
    t.true(r.exported.distinct);
    t.deepEqual(r.notify, { data: "FDSTORE=1\nFDNAME=steering", pid: r.notify.ourPid, ourPid: r.notify.ourPid, fds: 4, cloexec: [true, true, true, true] });
    t.true(r.notify.pid > 0);
  });

  test("the inherited link keeps its id and runs the new program; connections are steered throughout", async (t) => {
    const r = await scenario(t);
    t.truthy(r.linkA);
    t.is(r.linkB?.id, r.linkA?.id);
    t.not(r.linkB?.progId, r.linkA?.progId);
    t.is(r.linkB?.netnsIno, r.linkA?.netnsIno);
    t.deepEqual(r.linkAAfterSwap, r.linkB, "the old object sees the same link, now with the new program");
    t.like(r.errors.attachAdopted, { code: "ERR_STEERING_ATTACHED" });
    t.deepEqual(r.dialled, {
      unsteered: "error:ECONNREFUSED",
      byA: "app:20100",
      afterSwap: "app:20100",
      addedByB: "app:20101",
      afterMapsOnlyClose: "app:20100",
      afterRelease: "app:20100",
      afterClose: "error:ECONNREFUSED",
    });
  });

  test("the maps are shared: b's entries are a's, portEntries() round-trips through setPorts, counters carry over", async (t) => {
    const r = await scenario(t);
    const expected: PortBinding[] = [
      { family: 4, prefix: "127.0.0.0/8", port: 20100, slot: 0 },
      { family: 4, prefix: "127.0.0.2/32", port: 20101, slot: 0 },
      { family: 6, prefix: "2001:db8:0:0:1::/80", port: 20102, slot: 0 },
      { family: 6, prefix: "::1/128", port: 20102, slot: 0 },
      { family: 6, prefix: "::ffff:a01:200/120", port: 20102, slot: 7 },
    ];
    t.deepEqual(r.seenByA, expected.sort(byKey));
    t.deepEqual(r.roundTrip, r.seenByA);
    t.deepEqual(r.mapsOnly, { linkInfo: null, exportedLink: null, entries: 5 });
    // byA, afterSwap, addedByB, afterMapsOnlyClose: both programs count into one map.
    t.is(r.steeredBySlot0, 4);
  });

  test("release() leaves the link attached; close() of the adopter detaches it", async (t) => {
    const r = await scenario(t);
    t.deepEqual(r.linksAfterRelease, [{ id: r.linkB?.id, prog_id: r.linkB?.progId }]);
    t.like(r.errors.afterRelease, { code: "ERR_STEERING_CLOSED" });
    t.deepEqual(r.linksAfterClose, []);
    t.regex(r.fdsAtEnd, /^before: (\d+) fds .*\nafter: {2}\1 fds [^\n]*$/, r.fdsAtEnd);
  });

  test("inherited maps or a link of another layout are refused, leaving no fd behind", async (t) => {
    const r = await scenario(t);
    const mismatch = (e: ErrorInfo | undefined): string => (typeof e === "object" && e.code === "ERR_BPF_OBJECT_MISMATCH" ? e.message : `not a mismatch: ${JSON.stringify(e)}`);
    t.regex(mismatch(r.errors.countersAsPorts), /^inherited map "ports" \(fd \d+\) is percpu_array key 4 \/ value 24 \/ max 4096, steering\.h says lpm_trie key 24 \/ value 4 \/ max 262144/);
    t.regex(mismatch(r.errors.portsAsSockets), /^inherited map "sockets" \(fd \d+\) is lpm_trie .*, steering\.h says sockmap key 4 \/ value 8 \/ max 4096/);
    t.regex(mismatch(r.errors.mapAsLink), /^inherited link \(fd \d+\) is anon_inode:bpf-map, not a BPF link$/);
    t.like(r.errors.notBpf, { code: "EINVAL", syscall: "bpf_obj_get_info_by_fd" });
    t.like(r.errors.missingMap, { code: "ERR_INVALID_ARG_TYPE" });
    t.regex(r.fdsAfterFailedLoads, /^before: (\d+) fds .*\nafter: {2}\1 fds [^\n]*$/, r.fdsAfterFailedLoads);
  });
}

if (process.env.SWITCHYARD_HANDOVER_SCENARIO === "1") await handover();
else declareTests((await import("ava")).default);
