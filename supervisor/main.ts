// Supervisor entry (`switchyard run`): holds the listening sockets, runs
// generations of workers, reloads on SIGHUP / file change / ctl, stops on TERM/INT.
import { createLogger } from "../common/log.js";
import { loadConfigFile } from "../config/load.js";
import { ConfigError, SwitchyardError, formatProblem } from "../common/errors.js";
import { parseRunArgs } from "./args.js";
import { Supervisor } from "./supervisor.js";
import { startAdmin } from "./operations/admin.js";
import { startControl } from "./operations/control.js";
import { ConfigWatch } from "./reload/config-watch.js";
import { chooseSteering } from "./listeners/steering-select.js";
import { SystemdNotifier } from "./operations/systemd.js";
import { claimRuntimeDir } from "./runtime-dir-lock.js";

export async function runSupervisor(argv: string[]): Promise<number> {
  const options = parseRunArgs(argv);
  const log = createLogger({ role: "supervisor" });
  const reportStartFailure = (err: unknown): void => {
    const e = err as SwitchyardError;
    log.error({ event: "start_failed", code: e.code, reason: e.message });
    process.stderr.write(`switchyard: ${e.message}\n`);
  };

  // Signals are handled from the first moment: Node's default for HUP, TERM
  // and INT is to die, and HUP must reload, TERM and INT stop with status 0,
  // however early they come. Before the supervisor exists they are kept and
  // applied once it does.
  let sup: Supervisor | undefined;
  let stop: ((signal: string) => void) | undefined;
  let stopSignal: string | undefined;
  const earlyReloads = new Set<string>();
  const requestReload = (source: string): void => {
    if (sup) void sup.reloads.request(source);
    else earlyReloads.add(source);
  };
  const onStopSignal = (signal: string): void => {
    if (stop) stop(signal);
    else stopSignal ??= signal;
  };
  process.on("SIGTERM", () => onStopSignal("SIGTERM"));
  process.on("SIGINT", () => onStopSignal("SIGINT"));
  process.on("SIGHUP", () => {
    log.info({ event: "signal", signal: "SIGHUP" });
    requestReload("sighup");
  });
  process.on("SIGUSR1", () => sup?.accessLog.reopen());

  try {
    claimRuntimeDir(options.runtimeDir);
  } catch (err) {
    reportStartFailure(err);
    return 1;
  }

  // The watch starts before the first read of the file, so that no save made
  // after that read can go unnoticed, however long the start takes.
  const watch = new ConfigWatch(options.config, () => requestReload("file"), log);
  /** A stop signal came before the supervisor existed: nothing runs yet but the watch. */
  const stoppedEarly = async (): Promise<boolean> => {
    if (stopSignal === undefined) return false;
    log.info({ event: "signal", signal: stopSignal });
    await watch.close();
    log.info({ event: "supervisor_exited" });
    return true;
  };
  await watch.start();
  log.info({ event: "config_watch_started", file: options.config });
  if (await stoppedEarly()) return 0;
  let plan;
  try {
    plan = await loadConfigFile(options.config);
  } catch (err) {
    await watch.close();
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(formatProblem(p) + "\n");
      log.error({ event: "config_invalid", file: options.config, problems: err.problems });
      return 1;
    }
    throw err;
  }
  if (await stoppedEarly()) return 0;
  const notifier = new SystemdNotifier(log);
  let provider;
  try {
    provider = chooseSteering(options.steering, log);
  } catch (err) {
    reportStartFailure(err);
    await watch.close();
    return 1;
  }
  let supervisor: Supervisor;
  try {
    supervisor = new Supervisor(options, provider, log);
  } catch (err) {
    reportStartFailure(err);
    provider.closeAll();
    await watch.close();
    return 1;
  }
  sup = supervisor;
  supervisor.onReloadStart = () => notifier.reloading();
  supervisor.onReloadEnd = () => notifier.ready(supervisor);
  supervisor.rememberFile = () => watch.remember();

  let admin: import("node:http").Server | undefined;
  let control: import("node:net").Server | undefined;
  let stopping: Promise<void> | undefined;
  let stopped!: () => void;
  const finished = new Promise<void>((resolve) => (stopped = resolve));
  stop = (signal: string) => {
    if (stopping) return;
    log.info({ event: "signal", signal });
    notifier.stopping();
    stopping = (async () => {
      await watch.close();
      // Admin and control answer until the end: /healthz says 503 while the
      // workers drain, and `ctl status` shows what is still open.
      await supervisor.stop();
      control?.close();
      admin?.close();
      log.info({ event: "supervisor_exited" });
    })().then(stopped);
  };
  if (stopSignal !== undefined) stop(stopSignal);
  for (const source of earlyReloads) requestReload(source);

  try {
    admin = await startAdmin(supervisor, options.admin.host, options.admin.port, log);
    control = await startControl(supervisor, options.runtimeDir, log);
    await supervisor.start(plan, (admin.address() as import("node:net").AddressInfo).port);
  } catch (err) {
    // TERM/INT during the first start: an operator's stop, not a failure.
    if (stopping) {
      await finished;
      return 0;
    }
    reportStartFailure(err);
    await watch.close();
    await supervisor.stop().catch(() => undefined);
    admin?.close();
    control?.close();
    return 1;
  }
  if (!stopping) notifier.ready(supervisor);
  await finished;
  return 0;
}
