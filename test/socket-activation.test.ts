// Socket activation (a .socket unit opens the ports; ports mode): the supervisor
// serves on the sockets it is passed instead of binding, keeps them out of the fd
// store (systemd passes them on every start anyway), and after a kill -9 the
// restarted one serves on the same socket again: its queue held the connections.
import test from "ava";
import path from "node:path";
import { closeFd, listenTcp, setBlocking, socketInode } from "../native/index.js";
import { listeningSockets } from "../supervisor/listeners/listening-sockets.js";
import { ServiceManager } from "./helpers/service-manager.js";
import { freePorts, startTarget } from "./helpers/net.js";
import { app, config, startLoad } from "./helpers/reload.js";
import { tempDir, writeJson } from "./helpers/supervisor.js";

test("a socket unit's listener is served as it is, kept out of the fd store, and served again after kill -9: 0 refused", async (t) => {
  const target = await startTarget("a");
  const [port, own] = (await freePorts(2)) as [number, number];
  // What a .socket unit with ListenStream=127.0.0.1:PORT and FileDescriptorName=web passes:
  // a blocking socket (systemd sets O_NONBLOCK only with NonBlocking=yes).
  const unitSocket = listenTcp("127.0.0.1", port, 128);
  setBlocking(unitSocket, true);
  const inode = socketInode(unitSocket);
  const dir = tempDir("switchyard-socket-unit-");
  const configPath = path.join(dir, "config.json");
  writeJson(configPath, config(app("a", [port, own], [target])));
  const manager = new ServiceManager({
    args: ["--config", configPath, "--admin", "127.0.0.1:0", "--runtime-dir", path.join(dir, "run"), "--workers", "1", "--steering", "ports", "--fd-store", "--access-log", "off"],
    sockets: [{ name: "web", fd: unitSocket }],
  });
  t.teardown(async () => {
    await manager.stop();
    closeFd(unitSocket);
    await target.close();
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
  await load.progress(100);
  const result = await load.stop();
  t.is(result.failed, 0, JSON.stringify(result.errors));
  const received = manager.logs.slice(from).find((l) => l.event === "listen_fds_received");
  t.deepEqual(((received?.names as string[]) ?? []).sort(), ["state", `tcp-127.0.0.1-${own}`, "web"]);
  t.deepEqual(listeningSockets().filter((s) => s.port === port).map((s) => s.inode), [inode], `after the restart (pid ${again.pid})`);
});
