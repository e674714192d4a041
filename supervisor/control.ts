import net from "node:net";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "../common/log.js";
import { getPeerCred } from "../native/index.js";
import { socketFd } from "../common/socket-fd.js";
import type { Supervisor } from "./supervisor.js";
import { buildStatus } from "./status.js";
import { CONTROL_SOCKET, type ControlRequest, type ControlResponse } from "../common/control-protocol.js";

/**
 * The control socket of `switchyard ctl`: mode 0600, and the peer's uid
 * (SO_PEERCRED) must be ours or root's before anything is done.
 */
export function startControl(sup: Supervisor, runtimeDir: string, log: Logger): Promise<net.Server> {
  const socketPath = path.join(runtimeDir, CONTROL_SOCKET);
  const ownUid = process.getuid?.() ?? 0;
  const server = net.createServer((socket) => {
    const reply = (r: ControlResponse) => socket.end(JSON.stringify(r) + "\n");
    const fd = socketFd(socket);
    let uid: number | undefined;
    try {
      uid = fd === undefined ? undefined : getPeerCred(fd).uid;
    } catch {
      uid = undefined;
    }
    if (uid === undefined || (uid !== ownUid && uid !== 0)) {
      log.warn({ event: "control_denied", uid });
      return reply({ ok: false, code: "CONTROL_DENIED", message: `permission denied: uid ${uid ?? "unknown"} may not control this supervisor (uid ${ownUid})` });
    }
    let buffered = "";
    socket.setEncoding("utf8");
    socket.on("error", () => undefined);
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf("\n");
      if (nl < 0) {
        if (buffered.length > 4096) socket.destroy();
        return;
      }
      let req: ControlRequest;
      try {
        req = JSON.parse(buffered.slice(0, nl)) as ControlRequest;
      } catch {
        return reply({ ok: false, code: "USAGE", message: "malformed request" });
      }
      socket.removeAllListeners("data");
      handle(req).then(reply, (err: Error) => reply({ ok: false, code: "INTERNAL", message: err.message }));
    });
  });

  async function handle(req: ControlRequest): Promise<ControlResponse> {
    switch (req.command) {
      case "reload": {
        log.info({ event: "control_reload" });
        const r = await sup.reloads.request("ctl");
        return r.ok ? { ok: true, result: r } : { ok: false, code: r.code, message: r.message, result: r };
      }
      case "status":
        return { ok: true, result: await buildStatus(sup) };
      default:
        return { ok: false, code: "USAGE", message: `unknown command "${(req as { command: string }).command}"` };
    }
  }

  fs.rmSync(socketPath, { force: true });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    // bind(2) happens inside listen(): the socket file is born 0600, never wider.
    const oldMask = process.umask(0o177);
    server.listen(socketPath, () => {
      fs.chmodSync(socketPath, 0o600);
      server.off("error", reject);
      resolve(server);
    });
    process.umask(oldMask);
  });
}
