import http from "node:http";
import type { Logger } from "../common/log.js";
import type { Supervisor } from "./supervisor.js";
import { buildStatus } from "./status.js";

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body) + "\n");
}

/** Read-only admin HTTP: /healthz, /status, /metrics. */
export function startAdmin(sup: Supervisor, host: string, port: number, log: Logger): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: "only GET" });
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
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
