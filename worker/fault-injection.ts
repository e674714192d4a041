import fs from "node:fs";

/**
 * Test hook: when SWITCHYARD_FAULT_FILE names a file, a starting worker reads
 * it: "crash-on-start" makes it exit before serving; "unhealthy" makes its
 * health check answer "not serving"; "lag" makes it, once serving, hold its
 * event loop 300 ms out of every 350 for 5 s (an overloaded worker, for load
 * shedding); with ":N" appended ("unhealthy:1") only worker N of a generation
 * is hit. "channel:BASE64" makes it write those bytes on its channel to the
 * supervisor once started, as a broken worker might (the channel fuzz target);
 * "channel-serving:BASE64" once it serves. Tests write the file before a
 * reload so that only the new generation is affected. Unset in production:
 * one getenv, nothing else.
 */
export type Fault = "crash-on-start" | "unhealthy" | "lag" | { channelBytes: Buffer; when: "started" | "serving" } | undefined;

/** The "lag" fault: the event loop held 300 ms out of every 350, for LAG_FAULT_MS, then free again. */
export const LAG_FAULT_MS = 5000;

export function holdTheLoop(): void {
  const ends = Date.now() + LAG_FAULT_MS;
  const timer = setInterval(() => {
    if (Date.now() >= ends) return clearInterval(timer);
    const until = Date.now() + 300;
    while (Date.now() < until);
  }, 50).unref();
}

export function readFault(worker: number): Fault {
  const file = process.env.SWITCHYARD_FAULT_FILE;
  if (!file) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
  const channel = /^channel(-serving)?:(.*)$/s.exec(text);
  if (channel) return { channelBytes: Buffer.from(channel[2]!, "base64"), when: channel[1] ? "serving" : "started" };
  const [fault, only] = text.split(":");
  if (only !== undefined && Number(only) !== worker) return undefined;
  return fault === "crash-on-start" || fault === "unhealthy" || fault === "lag" ? fault : undefined;
}
