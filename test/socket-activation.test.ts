// Socket activation (a .socket unit opens the ports): the supervisor serves on
// the sockets it is passed instead of binding, keeps them out of the fd store
// (systemd passes them on every start anyway), and after a kill -9 the restarted
// one serves on the same socket again: its queue held the connections. BPF mode
// cannot use per-port sockets: `--steering auto` falls back to ports mode, and
// `--steering bpf` refuses to start (scenario test/scenarios/socket-activation.ts,
// in `unshare -n`: BPF is never attached to the machine's own namespace).
import test, { type ExecutionContext } from "ava";
import { listeningSockets } from "../supervisor/listeners/listening-sockets.js";
import { socketUnit } from "./helpers/socket-unit.js";
import { startLoad } from "./helpers/reload.js";
import type { LogLine } from "./helpers/supervisor.js";
import { scenarioResult } from "./helpers/netns.js";

test("a socket unit's listener is served as it is, kept out of the fd store, and served again after kill -9: 0 refused", async (t) => {
  const unit = await socketUnit();
  const { port, own, inode } = unit;
  const manager = unit.manager("ports", "run");
  t.teardown(async () => {
    await manager.stop();
    await unit.close();
  });
  manager.start();
  const ready = await manager.waitFor((l) => l.event === "supervisor_ready");
  // One listener on the port: the unit's socket, not one the supervisor bound.
  const onPort = listeningSockets().filter((s) => s.port === port);
  t.deepEqual(onPort.map((s) => s.inode), [inode]);
  // The port the unit did not open, the supervisor bound itself; only that one goes to the store.
  await manager.waitFor((l) => l.event === "fd_store_updated", 20_000, 0);
  // The log line can reach this process before the manager has polled the datagrams sent just ahead of it.
  for (const until = Date.now() + 5000; manager.storedNames().length < 2 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 5));
  t.deepEqual(manager.storedNames().sort(), ["state", `tcp-127.0.0.1-${own}`]);

  const load = startLoad([port, own], 4, 60_000);
  await load.progress(100);
  const from = manager.logs.length;
  process.kill(manager.mainPid, "SIGKILL");
  const again = await manager.waitFor((l) => l.event === "supervisor_ready" && l.pid !== ready.pid, 20_000, from);
  // Only the state is replaced in the store: the unit's socket never was in it, so nothing is removed for it.
  const update = await manager.waitFor((l) => l.event === "fd_store_updated" && l.pid === again.pid, 20_000, from);
  t.like(update, { removed: 1, stored: 2 }, JSON.stringify(update));
  await load.progress(100);
  const result = await load.stop();
  t.is(result.failed, 0, JSON.stringify(result.errors));
  const received = manager.logs.slice(from).find((l) => l.event === "listen_fds_received");
  t.deepEqual(((received?.names as string[]) ?? []).sort(), ["state", `tcp-127.0.0.1-${own}`, "web"]);
  t.deepEqual(listeningSockets().filter((s) => s.port === port).map((s) => s.inode), [inode], `after the restart (pid ${again.pid})`);
});

interface NetnsResult {
  /** The unit's socket. */
  inode: number;
  auto: { first: LogLine; fallbacks: LogLine[]; echoes: boolean[]; onPort: number[]; links: number; starts: number };
  bpf: { first: LogLine; events: string[]; onPort: number[] };
  linksAfter: number;
}

let netnsRun: Promise<NetnsResult> | undefined;
const inNetns = (t: ExecutionContext): Promise<NetnsResult> => (netnsRun ??= scenarioResult<NetnsResult>(t, "socket-activation"));

const WHY = /^socket activation passes per-port listening sockets \(web\), which BPF mode does not use$/;

test("--steering auto with a socket unit's listener, where BPF works: falls back to ports mode, says why, serves on the unit's socket", async (t) => {
  const { inode, auto } = await inNetns(t);
  t.like(auto.first, { event: "supervisor_ready", mode: "ports" }, JSON.stringify(auto.first));
  t.is(auto.starts, 1, "the supervisor was started again: it failed");
  t.is(auto.fallbacks.length, 1, JSON.stringify(auto.fallbacks));
  t.like(auto.fallbacks[0], { role: "supervisor", mode: "ports" });
  t.regex(String(auto.fallbacks[0]?.reason), WHY);
  t.deepEqual(auto.echoes, [true, true, true, true, true]);
  t.deepEqual(auto.onPort, [inode], "the listener on the port is not the unit's socket");
  // Decided before loading BPF: no sk_lookup program attached to the namespace.
  t.is(auto.links, 0);
});

test("--steering bpf with a socket unit's listener refuses to start, naming the problem and the fix", async (t) => {
  const { inode, bpf, linksAfter } = await inNetns(t);
  t.like(bpf.first, { event: "start_failed", code: "BPF_UNAVAILABLE" }, JSON.stringify(bpf.first));
  t.regex(String(bpf.first.reason), /^--steering bpf: socket activation passes per-port listening sockets \(web\), which BPF mode does not use; use --steering ports, or auto/);
  t.false(bpf.events.includes("steering_updated"), "the port map was written");
  t.deepEqual(bpf.onPort, [inode]);
  t.is(linksAfter, 0);
});
