// The `switchyard` command: picks the subcommand; each lives in its own module.
import type { SwitchyardError } from "../common/errors.js";

const USAGE = `usage:
  switchyard run --config FILE [--workers N] [--admin HOST:PORT] [--steering auto|bpf|ports]
                 [--runtime-dir DIR] [--drain-timeout SECONDS] [--start-timeout SECONDS]
                 [--max-draining N] [--user NAME] [--access-log -|off|FILE]
                 [--max-connections N] [--overload-lag MS] [--fd-store]
                 [--spare-workers N] [--worker-generations N] [--data-path native|js]
  switchyard check --config FILE
  switchyard ctl [--runtime-dir DIR] [--json] status|reload|upgrade
  switchyard echo --listen HOST:PORT [--listen HOST:PORT ...]
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  switch (command) {
    case "run":
      // Before the supervisor's modules load (why: supervisor/young-generation.ts).
      (await import("../supervisor/young-generation.js")).keepYoungGenerationSmall();
      return ((await import((await import("./supervisor-entry.js")).supervisorEntry())) as typeof import("../supervisor/main.js")).runSupervisor(rest);
    case "check":
      return (await import("./check.js")).check(rest);
    case "ctl":
      return (await import("./ctl.js")).ctl(rest);
    case "echo":
      return (await import("./echo.js")).echo(rest);
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(command ? `switchyard: unknown command "${command}"\n${USAGE}` : USAGE);
      return 2;
  }
}

/** Longest we wait for a reader of stdout or stderr before exiting anyway. */
const FLUSH_TIMEOUT_MS = 5000;

/**
 * Resolves once everything written to the stream has been handed to the kernel.
 * A pipe's writes are asynchronous once its buffer is full (64 KiB), and
 * process.exit drops what is still queued: `check 2>&1 | cat` lost lines.
 */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.write("", () => resolve());
    stream.once("error", () => resolve());
  });
}

/** Exits once stdout and stderr are written out, or after FLUSH_TIMEOUT_MS if a reader stalls. */
async function exitAfterFlush(code: number): Promise<never> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT_MS)));
  await Promise.race([Promise.all([flushed(process.stdout), flushed(process.stderr)]), timeout]);
  clearTimeout(timer);
  process.exit(code);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Handles (watchers, timers) of a finished command must not keep us alive.
    if (process.argv[2] !== "echo") void exitAfterFlush(code);
  },
  (err: unknown) => {
    // By its code, not instanceof: `run` throws from the supervisor's bundle, which has its own copy of the class.
    const usage = err instanceof Error && (err as SwitchyardError).code === "USAGE";
    const parseError = (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`switchyard: ${(err as Error).message}\n${usage || parseError ? USAGE : ""}`);
    void exitAfterFlush(usage || parseError ? 2 : 1);
  },
);
