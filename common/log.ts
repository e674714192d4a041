import { pino, type Logger } from "pino";

export type { Logger };

/** JSON lines on stdout; workers share the supervisor's stdout. */
export function createLogger(bindings: Record<string, unknown>, level = process.env.SWITCHYARD_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime });
}
