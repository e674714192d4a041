import fs from "node:fs";

/**
 * JSON lines on stdout in pino's format (numeric level, ISO time, the bindings,
 * the fields, `err` as {type, message, stack, code...}, `msg`), written here
 * rather than by pino: loading pino cost every worker process about 40 ms of
 * CPU and 8 MiB at start, paid again at every reload. Workers share the
 * supervisor's stdout; a line is one write(2), so lines never interleave.
 */
export interface Logger {
  readonly level: LevelName;
  trace(fields: Fields | string, msg?: string): void;
  debug(fields: Fields | string, msg?: string): void;
  info(fields: Fields | string, msg?: string): void;
  warn(fields: Fields | string, msg?: string): void;
  error(fields: Fields | string, msg?: string): void;
  fatal(fields: Fields | string, msg?: string): void;
  child(bindings: Fields): Logger;
}

type Fields = Record<string, unknown>;

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;
export type LevelName = keyof typeof LEVELS;

function isLevelName(s: string): s is LevelName {
  return Object.hasOwn(LEVELS, s);
}

/** An Error as pino's standard serializer writes it: its own enumerable fields (code, syscall...) kept. */
function serializeError(err: Error): Fields {
  return Object.assign<Fields, Error>({ type: err.constructor?.name ?? "Error", message: err.message, stack: err.stack }, err);
}

function replacer(this: unknown, _key: string, value: unknown): unknown {
  if (value instanceof Error) return serializeError(value);
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** JSON of a line; a circular reference becomes "[Circular]" rather than losing the line. */
function stringify(line: Fields): string {
  try {
    return JSON.stringify(line, replacer);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(line, function (this: unknown, key, value: unknown) {
      const v = replacer.call(this, key, value);
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[Circular]";
        seen.add(v);
      }
      return v;
    });
  }
}

const retryWait = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes the whole line to fd 1. stdout may be a non-blocking pipe shared with
 * other processes: EAGAIN waits a millisecond and tries again, for at most a
 * second, then the line is dropped (a stalled reader must not stop the proxy).
 */
function writeLine(text: string): void {
  let buf = Buffer.from(text + "\n");
  for (let tries = 0; buf.length > 0; ) {
    try {
      const n = fs.writeSync(1, buf);
      buf = buf.subarray(n);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "EAGAIN" || ++tries > 1000) return;
      Atomics.wait(retryWait, 0, 0, 1);
    }
  }
}

class JsonLogger implements Logger {
  private readonly threshold: number;

  constructor(readonly level: LevelName, private readonly bindings: Fields) {
    this.threshold = LEVELS[level];
  }

  private write(level: number, fields: Fields | string, msg?: string): void {
    if (level < this.threshold) return;
    const own = typeof fields === "string" ? { msg: fields } : fields;
    const err = typeof fields === "object" ? fields.err : undefined;
    const message = msg ?? (typeof fields === "string" ? undefined : err instanceof Error ? err.message : undefined);
    writeLine(stringify({ level, time: new Date().toISOString(), ...this.bindings, ...own, ...(message === undefined ? {} : { msg: message }) }));
  }

  trace(fields: Fields | string, msg?: string): void {
    this.write(LEVELS.trace, fields, msg);
  }
  debug(fields: Fields | string, msg?: string): void {
    this.write(LEVELS.debug, fields, msg);
  }
  info(fields: Fields | string, msg?: string): void {
    this.write(LEVELS.info, fields, msg);
  }
  warn(fields: Fields | string, msg?: string): void {
    this.write(LEVELS.warn, fields, msg);
  }
  error(fields: Fields | string, msg?: string): void {
    this.write(LEVELS.error, fields, msg);
  }
  fatal(fields: Fields | string, msg?: string): void {
    this.write(LEVELS.fatal, fields, msg);
  }

  child(bindings: Fields): Logger {
    return new JsonLogger(this.level, { ...this.bindings, ...bindings });
  }
}

/** JSON lines on stdout; workers share the supervisor's stdout. */
export function createLogger(bindings: Fields, level = process.env.SWITCHYARD_LOG_LEVEL ?? "info"): Logger {
  if (!isLevelName(level)) throw Object.assign(new Error(`unknown log level "${level}" (SWITCHYARD_LOG_LEVEL): use one of ${Object.keys(LEVELS).join(", ")}`), { code: "BAD_LOG_LEVEL" });
  return new JsonLogger(level, { pid: process.pid, ...bindings });
}
