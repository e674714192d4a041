import http from "node:http";

/** GET /healthz on a worker's unix socket; resolves with the status code, 0 when unreachable. */
export function probeWorker(socketPath: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: "/healthz", timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", () => resolve(0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}
