import net from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";
import { CONTROL_SOCKET, type ControlRequest, type ControlResponse } from "../common/control-protocol.js";
import { unixSocketPath, type UnixSocketPath } from "../common/unix-path.js";
import { defaultRuntimeDir } from "../supervisor/args.js";
import { formatStatusTable } from "./status-table.js";

/** One request on the control socket; messages name `where.file`, the real path. */
function call(where: UnixSocketPath, req: ControlRequest): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(where.path);
    let text = "";
    socket.setEncoding("utf8");
    socket.on("connect", () => {
      // connect(2) has resolved the /proc/self/fd path, if any: the directory fd is no longer needed.
      where.release();
      socket.write(JSON.stringify(req) + "\n");
    });
    socket.on("data", (c: string) => (text += c));
    socket.on("error", (err) => {
      where.release();
      reject(err);
    });
    socket.on("end", () => {
      try {
        resolve(JSON.parse(text) as ControlResponse);
      } catch {
        reject(new Error(text === "" ? "the supervisor closed the connection without an answer" : `malformed answer from ${where.file}: ${JSON.stringify(text.slice(0, 200))}`));
      }
    });
  });
}

/** `switchyard ctl [--runtime-dir DIR] [--json] status|reload|upgrade` */
export async function ctl(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { "runtime-dir": { type: "string" }, json: { type: "boolean" } },
  });
  const command = positionals[0];
  if (command !== "status" && command !== "reload" && command !== "upgrade") {
    process.stderr.write("usage: switchyard ctl [--runtime-dir DIR] [--json] status|reload|upgrade\n");
    return 2;
  }
  const runtimeDir = values["runtime-dir"] ?? defaultRuntimeDir();
  let res: ControlResponse;
  try {
    // A long path is reached through an fd of its directory: opening that can fail too.
    res = await call(unixSocketPath(runtimeDir, CONTROL_SOCKET), { command });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === "ENOENT" || code === "ECONNREFUSED" ? " (is the supervisor running with this --runtime-dir?)" : code === "EACCES" ? " (permission denied: run as the supervisor's user)" : "";
    process.stderr.write(`switchyard ctl: cannot reach ${path.join(runtimeDir, CONTROL_SOCKET)}: ${code ?? (err as Error).message}${hint}\n`);
    return 1;
  }
  if (!res.ok) {
    process.stderr.write(`switchyard ctl ${command}: failed: ${res.code}: ${res.message}\n`);
    const problems = (res.result as { problems?: { path: string; message: string }[] } | undefined)?.problems ?? [];
    // A single problem about the whole file is already the message: list problems only when they add to it.
    const adds = problems.length > 1 || problems.some((p) => p.path !== "" || !res.message.includes(p.message));
    if (adds) for (const p of problems) process.stderr.write(`  ${p.path ? `${p.path}: ` : ""}${p.message}\n`);
    if (values.json && res.result !== undefined) process.stdout.write(JSON.stringify(res.result, null, 2) + "\n");
    return 1;
  }
  if (values.json) process.stdout.write(JSON.stringify(res.result, null, 2) + "\n");
  else if (command === "status") process.stdout.write(formatStatusTable(res.result as Record<string, unknown>));
  else if (command === "upgrade") {
    const r = res.result as { pid: number; predecessorPid: number; generation: number; durationMs: number };
    process.stdout.write(`upgraded: supervisor pid ${r.pid} serves generation ${r.generation}; pid ${r.predecessorPid} drains and exits (${r.durationMs} ms)\n`);
  } else {
    const r = res.result as { generation: number; durationMs: number };
    process.stdout.write(`reloaded: generation ${r.generation} serving (${r.durationMs} ms)\n`);
  }
  return 0;
}
