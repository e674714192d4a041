import http from "node:http";
import type net from "node:net";
import type { Logger } from "../../common/log.js";
import type { Supervisor } from "../supervisor.js";
import { buildStatus } from "./status.js";
import { Rejections } from "./rejections.js";

/**
 * What one admin client may hold. Health checkers and Prometheus send one
 * small GET in one packet and read the answer at once, so these only stop
 * runaway or hostile clients, which must not starve /healthz or grow the
 * supervisor's memory: a connection must complete its headers within
 * `headersTimeoutMs` of its first byte (or of connecting) and its request
 * within `requestTimeoutMs`; headers are at most `maxHeaderBytes`; at most
 * `maxConnections` sockets at once (more are closed as they arrive); a socket
 * on which nothing moves for `idleTimeoutMs` (a client that stopped reading
 * an answer) is closed; a request body is never kept, and read (to drop it)
 * for at most `bodyLingerMs` and `bodyDropBytes` after the answer. Node checks
 * the first two timeouts every `checkIntervalMs`.
 */
export const ADMIN_LIMITS = {
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5000,
  idleTimeoutMs: 30_000,
  checkIntervalMs: 1000,
  maxHeaderBytes: 8192,
  maxHeadersCount: 64,
  maxConnections: 1024,
  maxRequestsPerSocket: 100,
  /** A body nobody asked for is read and dropped after the answer for at most this long, and this many bytes. */
  bodyLingerMs: 1000,
  bodyDropBytes: 1024 * 1024,
};

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body) + "\n");
}

/** The answers Node itself gives a request it could not parse, which a clientError listener replaces. */
const CLIENT_ERROR_ANSWERS: Record<string, { reason: string; status: string }> = {
  HPE_HEADER_OVERFLOW: { reason: "header_too_large", status: "431 Request Header Fields Too Large" },
  ERR_HTTP_REQUEST_TIMEOUT: { reason: "timeout", status: "408 Request Timeout" },
};

/** Read-only admin HTTP: /healthz, /status, /metrics. */
/** `inheritedFd`: the admin socket a previous supervisor listened on (an upgrade), taken as it is; owned from here on. */
export function startAdmin(sup: Supervisor, host: string, port: number, log: Logger, inheritedFd?: number): Promise<http.Server> {
  const rejections = new Rejections(
    log,
    "admin_rejected",
    sup.metrics.registry,
    { name: "switchyard_admin_rejected_total", help: "Admin HTTP connections closed without an answer to a request, by reason" },
    ["busy", "timeout", "header_too_large", "malformed"],
    ADMIN_LIMITS,
  );
  const server = http.createServer(
    {
      headersTimeout: ADMIN_LIMITS.headersTimeoutMs,
      requestTimeout: ADMIN_LIMITS.requestTimeoutMs,
      keepAliveTimeout: ADMIN_LIMITS.keepAliveTimeoutMs,
      connectionsCheckingInterval: ADMIN_LIMITS.checkIntervalMs,
      maxHeaderSize: ADMIN_LIMITS.maxHeaderBytes,
    },
    (req, res) => {
      const url = (req.url ?? "/").split("?")[0];
      // A body is never kept: read and dropped as it arrives. After the answer the
      // connection is cut once `bodyDropBytes` were dropped or `bodyLingerMs` passed;
      // not at once, since a client still writing its body would take the reset for the answer.
      const hasBody = req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] ?? "0") !== "0";
      if (hasBody) {
        let dropped = 0;
        let answered = false;
        req.on("data", (chunk: Buffer) => {
          dropped += chunk.length;
          if (answered && dropped > ADMIN_LIMITS.bodyDropBytes) req.socket.destroy();
        });
        res.once("finish", () => {
          answered = true;
          if (req.complete) return;
          if (dropped > ADMIN_LIMITS.bodyDropBytes) return void req.socket.destroy();
          const cut = setTimeout(() => req.socket.destroy(), ADMIN_LIMITS.bodyLingerMs).unref();
          req.once("end", () => clearTimeout(cut));
          req.socket.once("close", () => clearTimeout(cut));
        });
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.setHeader("allow", "GET, HEAD");
        return json(res, 405, { error: "only GET" });
      }
      const fail = (err: unknown) => {
        log.error({ event: "admin_error", url, err });
        if (!res.headersSent) json(res, 500, { error: (err as Error).message });
      };
      switch (url) {
        case "/healthz": {
          const ok = sup.pool.healthy();
          const status = ok ? "ok" : sup.pool.isStopping ? "stopping" : "unavailable";
          return json(res, ok ? 200 : 503, { status, generation: sup.pool.current?.number ?? null });
        }
        case "/status":
          return void buildStatus(sup).then((s) => json(res, 200, s), fail);
        case "/metrics":
          return void sup.metrics.render().then((m) => {
            res.writeHead(200, { "content-type": m.contentType });
            res.end(m.body);
          }, fail);
        default:
          return json(res, 404, { error: "not found", endpoints: ["/healthz", "/status", "/metrics"] });
      }
    },
  );
  server.maxConnections = ADMIN_LIMITS.maxConnections;
  server.maxRequestsPerSocket = ADMIN_LIMITS.maxRequestsPerSocket;
  server.maxHeadersCount = ADMIN_LIMITS.maxHeadersCount;
  server.timeout = ADMIN_LIMITS.idleTimeoutMs;
  server.on("drop", () => rejections.add("busy"));
  server.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    // A peer that reset or vanished needs no answer and is no abuse.
    if (err.code === "ECONNRESET" || err.code === "EPIPE" || !socket.writable) return void socket.destroy();
    const known = CLIENT_ERROR_ANSWERS[err.code ?? ""] ?? { reason: "malformed", status: "400 Bad Request" };
    rejections.add(known.reason);
    // As Node does without a listener: answer only if nothing of an answer was written yet.
    if (socket.bytesWritten === 0) socket.write(`HTTP/1.1 ${known.status}\r\nConnection: close\r\n\r\n`);
    socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const listening = (): void => {
      server.off("error", reject);
      resolve(server);
    };
    if (inheritedFd !== undefined) server.listen({ fd: inheritedFd }, listening);
    else server.listen(port, host, listening);
  });
}
