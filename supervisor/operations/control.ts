import net from "node:net";
import fs from "node:fs";
import type { Logger } from "../../common/log.js";
import { getPeerCred } from "../../native/index.js";
import { socketFd } from "../../common/socket-fd.js";
import { unixSocketPath } from "../../common/unix-path.js";
import type { Supervisor } from "../supervisor.js";
import { buildStatus } from "./status.js";
import { Rejections } from "./rejections.js";
import { CONTROL_LIMITS, CONTROL_SOCKET, parseControlRequest, type ControlRequest, type ControlResponse } from "../../common/control-protocol.js";

/**
 * The control socket of `switchyard ctl`: mode 0600, and the peer's uid
 * (SO_PEERCRED) must be ours or root's before anything is done.
 */
export interface ControlServer {
  server: net.Server;
  /** Stops accepting; `keepFile`: the socket file is another supervisor's now (an upgrade), left in place. */
  close(keepFile?: boolean): void;
}

/** What `ctl upgrade` asks of main.ts: resolves with the successor, or throws why not. */
export type UpgradeRequest = () => Promise<{ pid: number; generation: number; predecessorPid: number; durationMs: number }>;

/**
 * `inheritedFd`: the control socket a previous supervisor listened on (an
 * upgrade), taken as it is (same file, same mode); owned from here on.
 */
export function startControl(sup: Supervisor, runtimeDir: string, log: Logger, upgrade: UpgradeRequest, inheritedFd?: number): Promise<ControlServer> {
  const where = unixSocketPath(runtimeDir, CONTROL_SOCKET);
  const ownUid = process.getuid?.() ?? 0;
  const rejections = new Rejections(
    log,
    "control_rejected",
    sup.metrics.registry,
    { name: "switchyard_control_rejected_total", help: "Control connections refused or closed without being served, by reason" },
    ["busy", "denied", "timeout", "usage"],
    CONTROL_LIMITS,
  );
  /** Connections being served, and refused ones still being answered. */
  let served = 0;
  let refusing = 0;

  /** Answers, then closes once the client has closed its side or had `lingerMs` to. */
  function finish(socket: net.Socket, r: ControlResponse): void {
    socket.removeAllListeners("data");
    socket.removeAllListeners("end");
    // Dropped as it comes: nothing a client sends now is kept.
    socket.on("data", () => undefined);
    socket.resume();
    const giveUp = setTimeout(() => socket.destroy(), CONTROL_LIMITS.replyDeadlineMs).unref();
    socket.once("close", () => clearTimeout(giveUp));
    // With both sides ended Node closes the socket itself; the timer is for a client that never ends.
    socket.end(JSON.stringify(r) + "\n", () => {
      clearTimeout(giveUp);
      const linger = setTimeout(() => socket.destroy(), CONTROL_LIMITS.lingerMs).unref();
      socket.once("close", () => clearTimeout(linger));
    });
  }

  // Half-open allowed, so a client that ends its request without the "\n" still hears why.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on("error", () => undefined);
    if (served >= CONTROL_LIMITS.maxConnections) {
      rejections.add("busy");
      // Answering costs a socket for up to lingerMs: beyond as many again, close at once, unanswered.
      if (refusing >= CONTROL_LIMITS.maxConnections) return void socket.destroy();
      refusing += 1;
      socket.once("close", () => (refusing -= 1));
      return finish(socket, { ok: false, code: "CONTROL_BUSY", message: `too many control connections (limit ${CONTROL_LIMITS.maxConnections}); try again` });
    }
    served += 1;
    socket.once("close", () => (served -= 1));
    const fd = socketFd(socket);
    let uid: number | undefined;
    try {
      uid = fd === undefined ? undefined : getPeerCred(fd).uid;
    } catch {
      uid = undefined;
    }
    if (uid === undefined || (uid !== ownUid && uid !== 0)) {
      // Logged one by one, unlike the other rejections: each is someone trying what they may not.
      log.warn({ event: "control_denied", uid });
      rejections.add("denied");
      return finish(socket, { ok: false, code: "CONTROL_DENIED", message: `permission denied: uid ${uid ?? "unknown"} may not control this supervisor (uid ${ownUid})` });
    }
    // A deadline for the whole line, not an idle timer: a byte a second must not keep it open.
    const deadline = setTimeout(() => {
      rejections.add("timeout");
      finish(socket, { ok: false, code: "USAGE", message: `no complete request line within ${CONTROL_LIMITS.requestDeadlineMs} ms` });
    }, CONTROL_LIMITS.requestDeadlineMs);
    socket.once("close", () => clearTimeout(deadline));
    /** The request is complete or refused: no more of it is read. */
    const stopReading = () => {
      clearTimeout(deadline);
      socket.removeAllListeners("data");
      socket.removeAllListeners("end");
      socket.pause();
    };
    const refuse = (message: string) => {
      stopReading();
      rejections.add("usage");
      finish(socket, { ok: false, code: "USAGE", message });
    };
    const chunks: Buffer[] = [];
    let size = 0;
    socket.once("end", () => refuse(size === 0 ? "no request: the connection ended before a request line" : "request ended without its newline"));
    socket.on("data", (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      if (nl < 0) {
        size += chunk.length;
        chunks.push(chunk);
        if (size > CONTROL_LIMITS.maxRequestBytes) refuse(`request longer than ${CONTROL_LIMITS.maxRequestBytes} bytes`);
        return;
      }
      chunks.push(chunk.subarray(0, nl));
      const parsed = parseControlRequest(Buffer.concat(chunks));
      if (!parsed.ok) return refuse(parsed.message);
      stopReading();
      handle(parsed.request).then(
        (r) => finish(socket, r),
        (err: Error) => finish(socket, { ok: false, code: "INTERNAL", message: err.message }),
      );
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
      case "upgrade": {
        log.info({ event: "control_upgrade" });
        try {
          return { ok: true, result: await upgrade() };
        } catch (err) {
          const e = err as { code?: string; message: string };
          return { ok: false, code: e.code ?? "UPGRADE_FAILED", message: e.message };
        }
      }
    }
  }

  let keepFile = false;
  const control: ControlServer = {
    server,
    close: (keep = false) => {
      keepFile = keep;
      if (!keep) return void server.close();
      // libuv unlinks the path it bound as it closes, though the socket lives on
      // in the successor: a second name for it is made first and put back after.
      const spare = `${where.file}.handover-${process.pid}`;
      try {
        fs.linkSync(where.file, spare);
      } catch {
        return void server.close();
      }
      server.close();
      fs.renameSync(spare, where.file);
    },
  };
  // libuv unlinks the path it bound on close; bound through /proc/self/fd, that path is gone by then.
  server.on("close", () => {
    if (!keepFile) fs.rmSync(where.file, { force: true });
  });
  if (inheritedFd !== undefined) {
    where.release();
    // Not bound here, so libuv unlinks nothing on close; the file is removed above unless kept.
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ fd: inheritedFd }, () => {
        server.off("error", reject);
        resolve(control);
      });
    });
  }
  fs.rmSync(where.file, { force: true });
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      where.release();
      reject(err);
    };
    server.once("error", fail);
    // bind(2) happens inside listen(), synchronously: the socket file is born 0600, never wider.
    const oldMask = process.umask(0o177);
    try {
      server.listen(where.path, () => {
        server.off("error", fail);
        where.release();
        try {
          fs.chmodSync(where.file, 0o600);
        } catch (err) {
          server.close();
          return reject(err as Error);
        }
        resolve(control);
      });
    } finally {
      process.umask(oldMask);
    }
  });
}
