// Supervisor entry (`switchyard run`): holds the listening sockets, runs
// generations of workers, reloads on SIGHUP / file change / ctl, stops on TERM/INT.
import { createLogger } from "../common/log.js";
import { loadConfigFile } from "../config/load.js";
import { ConfigError, SwitchyardError, formatProblem } from "../common/errors.js";
import { parseRunArgs } from "./args.js";
import { Supervisor } from "./supervisor.js";
import { startAdmin } from "./admin.js";
import { startControl } from "./control.js";
import { ConfigWatch } from "./config-watch.js";
import { chooseSteering } from "./steering-select.js";
import { SystemdNotifier } from "./systemd.js";

export async function runSupervisor(argv: string[]): Promise<number> {
  const options = parseRunArgs(argv);
  const log = createLogger({ role: "supervisor" });
  // The watch starts before the first read of the file, so that no save made
  // after that read can go unnoticed, however long the start takes. A change
  // seen before the supervisor exists is requested once it does.
  let requestFileReload: (() => void) | undefined;
  let changedBeforeStart = false;
  const watch = new ConfigWatch(options.config, () => (requestFileReload ? requestFileReload() : (changedBeforeStart = true)), log);
  await watch.start();
  log.info({ event: "config_watch_started", file: options.config });
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
  const notifier = new SystemdNotifier(log);
  let provider;
  try {
    provider = chooseSteering(options.steering, log);
  } catch (err) {
    const e = err as SwitchyardError;
    log.error({ event: "start_failed", code: e.code, reason: e.message });
    process.stderr.write(`switchyard: ${e.message}\n`);
    await watch.close();
    return 1;
  }
  const sup = new Supervisor(options, provider, log);
  requestFileReload = () => void sup.reloads.request("file");
  if (changedBeforeStart) requestFileReload();
  sup.onReloadStart = async () => {
    notifier.reloading();
    await watch.remember();
  };
  sup.onReloadEnd = () => notifier.ready(sup);

  let stopping: Promise<void> | undefined;
  let stopped!: () => void;
  const finished = new Promise<void>((resolve) => (stopped = resolve));
  const stop = (signal: string) => {
    if (stopping) return;
    log.info({ event: "signal", signal });
    notifier.stopping();
    stopping = (async () => {
      await watch.close();
      control?.close();
      admin?.close();
      await sup.stop();
      log.info({ event: "supervisor_exited" });
    })().then(stopped);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGHUP", () => {
    log.info({ event: "signal", signal: "SIGHUP" });
    void sup.reloads.request("sighup");
  });
  process.on("SIGUSR1", () => sup.accessLog.reopen());

  let admin: import("node:http").Server | undefined;
  let control: import("node:net").Server | undefined;
  try {
    admin = await startAdmin(sup, options.admin.host, options.admin.port, log);
    control = await startControl(sup, options.runtimeDir, log);
    await sup.start(plan, (admin.address() as import("node:net").AddressInfo).port);
  } catch (err) {
    // TERM/INT during the first start: an operator's stop, not a failure.
    if (stopping) {
      await finished;
      return 0;
    }
    const e = err as SwitchyardError;
    log.error({ event: "start_failed", code: e.code, reason: e.message });
    process.stderr.write(`switchyard: ${e.message}\n`);
    await watch.close();
    await sup.stop().catch(() => undefined);
    admin?.close();
    control?.close();
    return 1;
  }
  if (!stopping) notifier.ready(sup);
  await finished;
  return 0;
}
