import fs from "node:fs";

/**
 * Test hook: when SWITCHYARD_FAULT_FILE names a file, a starting worker reads
 * it: "crash-on-start" makes it exit before serving, "unhealthy" makes its
 * /healthz answer 503. Tests write the file before a reload so that only the
 * new generation is affected. Unset in production: one getenv, nothing else.
 */
export type Fault = "crash-on-start" | "unhealthy" | undefined;

export function readFault(): Fault {
  const file = process.env.SWITCHYARD_FAULT_FILE;
  if (!file) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
  return text === "crash-on-start" || text === "unhealthy" ? text : undefined;
}
