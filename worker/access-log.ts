import fs from "node:fs";
import type { ConnectionRecord } from "./connection.js";

/**
 * One JSON line per finished connection, written to the pipe the supervisor
 * gave us (SWITCHYARD_ACCESS_LOG_FD). The supervisor owns the destination
 * (stdout or a file it reopens on SIGUSR1), because this process has dropped
 * the privileges it would need to reopen a file. Field names are documented
 * in the README and kept stable.
 */
export class AccessLog {
  private constructor(private readonly stream: fs.WriteStream | undefined) {}

  static fromEnv(): AccessLog {
    const fd = Number(process.env.SWITCHYARD_ACCESS_LOG_FD);
    if (!Number.isInteger(fd) || fd <= 2) return new AccessLog(undefined);
    const stream = fs.createWriteStream("", { fd, autoClose: true });
    // EPIPE once the supervisor is gone (a crash): the lines are lost, the connections must not be.
    stream.on("error", () => undefined);
    return new AccessLog(stream);
  }

  get enabled(): boolean {
    return this.stream !== undefined;
  }

  write(r: ConnectionRecord): void {
    if (!this.stream || this.stream.destroyed) return;
    this.stream.write(
      JSON.stringify({
        time: new Date(r.startedAt + r.durationMs).toISOString(),
        app: r.app ?? null,
        client_addr: r.clientAddress ?? null,
        client_port: r.clientPort ?? null,
        port: r.localPort ?? null,
        target: r.target ?? null,
        bytes_in: r.bytesIn,
        bytes_out: r.bytesOut,
        duration_ms: r.durationMs,
        end: r.end,
      }) + "\n",
    );
  }

  /** Resolves once every line written so far is in the pipe (writes complete in order). */
  flushed(): Promise<void> {
    const s = this.stream;
    if (!s || s.destroyed || s.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => s.write("", () => resolve()));
  }

  close(): Promise<void> {
    const s = this.stream;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.end(() => resolve()));
  }
}
