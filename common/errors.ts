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
  | "CONTROL_BUSY"
  | "ACCESS_LOG_FAILED"
  | "RUNTIME_DIR_IN_USE"
  | "UPGRADE_FAILED"
  | "UPGRADE_BUSY"
  | "UPGRADE_IN_PROGRESS"
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

/** How many problems a ConfigError keeps; the rest are only counted. */
export const MAX_REPORTED_PROBLEMS = 100;

export interface ConfigErrorOptions {
  cause?: unknown;
  code?: "CONFIG_INVALID" | "CONFIG_UNREADABLE";
  /** Problems found but not passed in (the collector stopped keeping them). */
  omitted?: number;
  /** True when counting stopped too, so `omitted` is a lower bound. */
  omittedAtLeast?: boolean;
}

/**
 * A file with 100,000 bad ports must not print 100,000 lines, nor carry them
 * through logs, /status and ctl: only the first MAX_REPORTED_PROBLEMS are kept,
 * followed by one summary problem (path "") saying how many more there are, so
 * every consumer that lists `problems` shows the summary without knowing of it.
 */
export class ConfigError extends SwitchyardError {
  readonly problems: ConfigProblem[];
  /** Problems found beyond those listed (the summary line is not one of them). */
  readonly omitted: number;
  constructor(problems: readonly ConfigProblem[], options?: ConfigErrorOptions) {
    const kept = problems.slice(0, MAX_REPORTED_PROBLEMS);
    const omitted = problems.length - kept.length + (options?.omitted ?? 0);
    if (omitted > 0 || options?.omittedAtLeast) kept.push({ path: "", message: omittedSummary(omitted, options?.omittedAtLeast === true) });
    super(options?.code ?? "CONFIG_INVALID", kept.map(formatProblem).join("; "), options);
    this.name = "ConfigError";
    this.problems = kept;
    this.omitted = omitted;
  }
}

function omittedSummary(omitted: number, atLeast: boolean): string {
  if (atLeast && omitted === 0) return "... and possibly more problems (the check stopped early)";
  const n = omitted.toLocaleString("en-US");
  return `... and ${atLeast ? "at least " : ""}${n} more problem${omitted === 1 ? "" : "s"}`;
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
