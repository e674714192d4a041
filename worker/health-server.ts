import http from "node:http";
import fs from "node:fs";

export interface HealthState {
  serving: boolean;
  body(): Record<string, unknown>;
}

/** /healthz on a unix socket in the runtime dir: the supervisor's gate for a new generation. */
export function startHealthServer(socketPath: string, state: HealthState): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== "GET" || req.url !== "/healthz") {
      res.writeHead(404).end();
      return;
    }
    const ok = state.serving;
    res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: ok ? "serving" : "not-serving", ...state.body() }));
  });
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    // A stale socket file from a crashed predecessor with the same name would make bind fail.
    fs.rmSync(socketPath, { force: true });
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
