import fs from "node:fs";
import { SwitchyardError } from "../../common/errors.js";

/**
 * The uid/gid workers drop to. Only root drops privileges; "" or "root" keeps them.
 * Read from /etc/passwd: a missing user is a start-up error, not a silent root worker.
 */
export function workerCredentials(user: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0 || user === "" || user === "root") return undefined;
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.split(":")[0] === user);
  const fields = line?.split(":");
  if (!fields || fields.length < 4) throw new SwitchyardError("USAGE", `--user: no user "${user}" in /etc/passwd`);
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}
