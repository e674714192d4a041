import path from "node:path";
import { closeFd, listenTcp, setBlocking, socketInode } from "../../native/index.js";
import { ServiceManager } from "./service-manager.js";
import { freePorts, startTarget, type Target } from "./net.js";
import { app, config } from "./reload.js";
import { tempDir, writeJson } from "./supervisor.js";

export interface SocketUnit {
  target: Target;
  /** The port the unit's socket listens on. */
  port: number;
  /** A port of the same app the unit does not open: the supervisor binds it itself. */
  own: number;
  unitSocket: number;
  inode: number;
  /** A service manager that passes the unit's socket (as "web") to every start. */
  manager(steering: string, runDir: string): ServiceManager;
  close(): Promise<void>;
}

/**
 * What a .socket unit with ListenStream=127.0.0.1:PORT and FileDescriptorName=web
 * passes: a blocking socket (systemd sets O_NONBLOCK only with NonBlocking=yes),
 * for an app on that port and one more.
 */
export async function socketUnit(): Promise<SocketUnit> {
  const target = await startTarget("a");
  const [port, own] = (await freePorts(2)) as [number, number];
  const unitSocket = listenTcp("127.0.0.1", port, 128);
  setBlocking(unitSocket, true);
  const dir = tempDir("switchyard-socket-unit-");
  const configPath = path.join(dir, "config.json");
  writeJson(configPath, config(app("a", [port, own], [target])));
  return {
    target,
    port,
    own,
    unitSocket,
    inode: socketInode(unitSocket),
    manager: (steering, runDir) =>
      new ServiceManager({
        args: ["--config", configPath, "--admin", "127.0.0.1:0", "--runtime-dir", path.join(dir, runDir), "--workers", "1", "--steering", steering, "--fd-store", "--access-log", "off"],
        sockets: [{ name: "web", fd: unitSocket }],
      }),
    close: async () => {
      closeFd(unitSocket);
      await target.close();
    },
  };
}
