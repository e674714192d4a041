// Requests and responses on the control socket: one JSON line each way, one
// request per connection.
export const CONTROL_SOCKET = "control.sock";

export const CONTROL_COMMANDS = ["reload", "status", "upgrade"] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];

export type ControlRequest = { command: ControlCommand };

export type ControlResponse =
  | { ok: true; result: unknown }
  | { ok: false; code: string; message: string; result?: unknown };

/** A request line longer than this (without its "\n") is refused: a real one is under 30 bytes. */
export const MAX_REQUEST_BYTES = 4096;

/**
 * What one control client may hold. `ctl` opens one connection, writes ~20
 * bytes at once and reads the answer, so these only ever stop a runaway or
 * hostile client: it can pin at most `maxConnections` sockets, each for at
 * most `requestDeadlineMs` before its request line is complete, and at most
 * `maxRequestBytes` of buffer each. The wait for a reload's outcome is not
 * bounded here: that is the reload's own start timeout.
 */
export const CONTROL_LIMITS = {
  maxConnections: 64,
  requestDeadlineMs: 5000,
  maxRequestBytes: MAX_REQUEST_BYTES,
  /** How long an answer may wait for a client that does not read it. */
  replyDeadlineMs: 10_000,
  /**
   * After the answer, how long the client has to close its side while what it
   * still sends is read and dropped: closing on unread bytes would reset the
   * connection, and a client still writing would lose the answer.
   */
  lingerMs: 1000,
};

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The request on one line (without its "\n"), or why it is not one. Anything
 * but an object with exactly a known `command` is refused here, so the
 * handler never meets null, an array or a stray key.
 */
export function parseControlRequest(line: Buffer): { ok: true; request: ControlRequest } | { ok: false; message: string } {
  if (line.length > MAX_REQUEST_BYTES) return { ok: false, message: `request longer than ${MAX_REQUEST_BYTES} bytes` };
  let text: string;
  try {
    text = decoder.decode(line);
  } catch {
    return { ok: false, message: "request is not valid UTF-8" };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, message: `request is not JSON; expected one line like {"command":"status"}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, message: `request must be a JSON object like {"command":"status"}, not ${value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`}` };
  }
  const extra = Object.keys(value).filter((k) => k !== "command");
  if (extra.length > 0) return { ok: false, message: `unknown key ${JSON.stringify(extra[0]!.slice(0, 64))} in request; only "command" is allowed` };
  const command = (value as { command?: unknown }).command;
  if (typeof command !== "string") return { ok: false, message: `request needs a string "command": ${CONTROL_COMMANDS.join(" or ")}` };
  if (!(CONTROL_COMMANDS as readonly string[]).includes(command)) {
    return { ok: false, message: `unknown command ${JSON.stringify(command.slice(0, 64))}; expected ${CONTROL_COMMANDS.join(" or ")}` };
  }
  return { ok: true, request: { command: command as ControlCommand } };
}
