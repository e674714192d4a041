// Requests and responses on the control socket: one JSON line each way.
export const CONTROL_SOCKET = "control.sock";

export type ControlRequest = { command: "reload" } | { command: "status" };

export type ControlResponse =
  | { ok: true; result: unknown }
  | { ok: false; code: string; message: string; result?: unknown };
