// Every error switchyard raises on purpose carries a stable `code`; callers
// branch on it, never on message text. The original error stays as `cause`.

export type ErrorCode =
  | "CONFIG_INVALID"
  | "CONFIG_UNREADABLE"
  | "LISTEN_FAILED"
  | "HANDOFF_FAILED"
  | "WORKER_START_FAILED"
  | "WORKER_UNHEALTHY"
  | "RELOAD_FAILED"
  | "RELOAD_SUPERSEDED"
  | "BPF_UNAVAILABLE"
  | "CONTROL_DENIED"
  | "CONTROL_UNREACHABLE"
  | "ACCESS_LOG_FAILED"
  | "RUNTIME_DIR_IN_USE"
  | "USAGE";

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SwitchyardError";
    this.code = code;
  }
}

/** One problem in a config file, with the path of the offending value. */
export interface ConfigProblem {
  /** e.g. "Apps[1].Ports[2]", or "" for the document itself. */
  path: string;
  message: string;
}

export class ConfigError extends SwitchyardError {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[], options?: { cause?: unknown; code?: "CONFIG_INVALID" | "CONFIG_UNREADABLE" }) {
    super(options?.code ?? "CONFIG_INVALID", problems.map(formatProblem).join("; "), options);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return p.path === "" ? p.message : `${p.path}: ${p.message}`;
}

/** The errno-carrying shape the native addon throws. */
export interface SyscallError extends Error {
  code: string;
  syscall: string;
  errno?: number;
}

export function isSyscallError(e: unknown): e is SyscallError {
  return e instanceof Error && typeof (e as SyscallError).code === "string" && typeof (e as SyscallError).syscall === "string";
}
