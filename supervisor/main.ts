// Supervisor entry (`switchyard run`): holds the listening sockets, runs
// generations of workers, reloads on SIGHUP / file change / ctl, hands over to
// a new supervisor on SIGUSR2 / `ctl upgrade`, stops on TERM/INT.
import fs from "node:fs";
import type http from "node:http";
import { createLogger } from "../common/log.js";
import { loadConfigFile } from "../config/load.js";
import { ConfigError, SwitchyardError, formatProblem } from "../common/errors.js";
import { dupFd } from "../native/index.js";
import { serverFd } from "../common/socket-fd.js";
import { parseRunArgs } from "./args.js";
import { Supervisor } from "./supervisor.js";
import { startAdmin } from "./operations/admin.js";
import { startControl, type ControlServer } from "./operations/control.js";
import { ConfigWatch } from "./reload/config-watch.js";
import { chooseSteering } from "./listeners/steering-select.js";
import { SystemdNotifier } from "./operations/systemd.js";
import { adoptRuntimeDirLock, claimRuntimeDir } from "./runtime-dir-lock.js";
import { closeInheritance, sortInheritance, type Inheritance } from "./handover/inheritance.js";
import { FD_NAMES, takeListenFds, type NamedFd } from "./handover/named-fds.js";
import { isUpgrade, receiveHandover, type Predecessor } from "./handover/predecessor.js";
import { FdStore } from "./handover/fd-store.js";
import { Upgrades } from "./handover/upgrades.js";

function upgradeFault(): boolean {
  const file = process.env.SWITCHYARD_FAULT_FILE;
  try {
    return file !== undefined && fs.readFileSync(file, "utf8").trim() === "upgrade-exit";
  } catch {
    return false;
  }
}

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
  let upgrades: Upgrades | undefined;
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
  // As nginx operators expect: USR2 upgrades (the outcome is logged; `ctl upgrade` also answers).
  process.on("SIGUSR2", () => {
    log.info({ event: "signal", signal: "SIGUSR2" });
    if (upgrades) upgrades.request().catch(() => undefined);
    else log.warn({ event: "upgrade_refused", reason: "the supervisor is still starting" });
  });

  // What the previous supervisor left: handed over in an upgrade, or kept by
  // systemd's fd store (a restart after a crash) or a socket unit.
  let predecessor: Predecessor | undefined;
  let inheritance: Inheritance | undefined;
  if (isUpgrade()) {
    // Test hook (like the workers' in worker/fault-injection.ts): a successor that dies as it starts.
    if (upgradeFault()) process.exit(3);
    try {
      predecessor = await receiveHandover(log);
      inheritance = predecessor.inheritance;
    } catch (err) {
      reportStartFailure(err);
      return 1;
    }
  } else {
    const fds = takeListenFds();
    if (fds.length > 0) {
      inheritance = sortInheritance("systemd", fds, undefined, log);
      log.info({ event: "listen_fds_received", count: fds.length, names: [...inheritance.names].slice(0, 20) });
    }
  }
  /** Until this supervisor serves, what it was handed is not its own to close for everyone (a BPF link). */
  let owner = predecessor === undefined;
  const failStart = async (err: unknown): Promise<number> => {
    reportStartFailure(err);
    if (predecessor) await predecessor.failed(err instanceof SwitchyardError ? err : new SwitchyardError("UPGRADE_FAILED", (err as Error).message));
    if (inheritance) closeInheritance(inheritance);
    return 1;
  };

  let lockFd: number;
  try {
    lockFd = inheritance?.lock !== undefined ? adoptRuntimeDirLock(dupFd(inheritance.lock)) : claimRuntimeDir(options.runtimeDir);
  } catch (err) {
    return failStart(err);
  }

  // The watch starts before the first read of the file, so that no save made
  // after that read can go unnoticed, however long the start takes.
  const watch = new ConfigWatch(options.config, () => requestReload("file"), log);
  /** A stop signal came before the supervisor existed: nothing runs yet but the watch. */
  const stoppedEarly = async (): Promise<boolean> => {
    if (stopSignal === undefined) return false;
    log.info({ event: "signal", signal: stopSignal });
    await watch.close();
    if (predecessor) await predecessor.failed(new SwitchyardError("UPGRADE_FAILED", `stopped by ${stopSignal} while starting`));
    if (inheritance) closeInheritance(inheritance);
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
      if (predecessor) await predecessor.failed(new SwitchyardError("CONFIG_INVALID", `the new supervisor rejects ${options.config}: ${err.message}`));
      if (inheritance) closeInheritance(inheritance);
      return 1;
    }
    throw err;
  }
  if (await stoppedEarly()) return 0;
  const notifier = new SystemdNotifier(log);
  let provider;
  try {
    provider = chooseSteering(options.steering, log, inheritance);
  } catch (err) {
    await watch.close();
    return failStart(err);
  }
  let supervisor: Supervisor;
  try {
    supervisor = new Supervisor(options, provider, log);
  } catch (err) {
    if (owner) provider.closeAll();
    else provider.release();
    await watch.close();
    return failStart(err);
  }
  sup = supervisor;
  supervisor.onReloadStart = () => notifier.reloading();
  supervisor.onReloadEnd = () => notifier.ready(supervisor);
  supervisor.rememberFile = () => watch.remember();
  if (inheritance) supervisor.pool.continueFrom(inheritance.generation);
  if (inheritance?.counters) supervisor.counters.adopt(inheritance.counters.fd, inheritance.counters);
  if (predecessor) {
    void predecessor.gone.then(() => supervisor.counters.releaseInherited());
    supervisor.metrics.inherit(predecessor.counters as never);
    supervisor.prober.adopt(predecessor.targetStates);
    predecessor.onTotals = (m) => supervisor.metrics.inherit(m as never);
  }
  // A socket unit's listeners come with every start, never from the store: nothing to remove there.
  const unitSockets = new Set((inheritance?.socketUnit ?? []).map((l) => l.name));
  const storeHolds = [...(inheritance?.names ?? [])].filter((n) => !unitSockets.has(n) && n !== FD_NAMES.control && n !== FD_NAMES.admin && n !== FD_NAMES.lock && n !== FD_NAMES.counters);
  const fdStore = new FdStore(notifier, log, storeHolds);
  /**
   * A predecessor still draining (an upgrade) is in the same service: the main
   * process must not exit before it, or systemd (KillMode=mixed) would SIGKILL
   * it and cut what it still carries. Bounded by the drain timeout.
   */
  let predecessorAlive = predecessor !== undefined;
  void predecessor?.gone.then(() => (predecessorAlive = false));
  const predecessorDrained = async (): Promise<void> => {
    if (!predecessor || !predecessorAlive) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, options.drainTimeoutMs + 5000)));
    log.info({ event: "waiting_for_predecessor", predecessor_pid: predecessor.pid });
    await Promise.race([predecessor.gone, bound]);
    clearTimeout(timer);
  };
  let handedOver = false;
  /** After a hand-over: this supervisor's drain and exit, which a stop signal then waits for. */
  let windDown: Promise<void> | undefined;
  /** systemd takes fds (and anything else) only from the unit's main process: a successor waits to be it. */
  let mainProcess = predecessor === undefined;
  const syncFdStore = (): void => {
    if (!options.fdStore || !fdStore.enabled || handedOver || !mainProcess) return;
    const h = supervisor.handover();
    void fdStore.sync(h.fds, h.state);
  };
  supervisor.onCutOver = syncFdStore;

  let admin: http.Server | undefined;
  let control: ControlServer | undefined;
  let stopping: Promise<void> | undefined;
  let stopped!: () => void;
  const finished = new Promise<void>((resolve) => (stopped = resolve));
  upgrades = new Upgrades({
    supervisor,
    log,
    specials: () => {
      const fds: NamedFd[] = [{ name: FD_NAMES.lock, fd: dupFd(lockFd) }, { name: FD_NAMES.counters, fd: dupFd(supervisor.counters.fd) }];
      const controlFd = control && serverFd(control.server);
      const adminFd = admin && serverFd(admin);
      if (controlFd !== undefined) fds.push({ name: FD_NAMES.control, fd: dupFd(controlFd) });
      if (adminFd !== undefined) fds.push({ name: FD_NAMES.admin, fd: dupFd(adminFd) });
      return fds;
    },
    refuse: () => (stopping ? "the supervisor is stopping" : !owner ? "the supervisor is itself taking over from another" : undefined),
    // The successor serves: systemd follows it, and this one drains and exits.
    handedOver: async (successor) => {
      handedOver = true;
      await notifier.handOverTo(successor.pid);
      successor.becameMain();
      windDown = (async () => {
        await watch.close();
        control?.close(true);
        admin?.close();
        // The draining workers count on: the successor hears the totals every second, and once they have exited.
        const totals = (): Promise<unknown[]> =>
          supervisor.metrics.totals().catch((err: Error) => {
            log.warn({ event: "upgrade_totals_failed", reason: err.message });
            return [];
          });
        const updates = setInterval(() => void totals().then((m) => m.length > 0 && successor.update(m)), 1000);
        await supervisor.stop(true);
        await predecessorDrained();
        clearInterval(updates);
        successor.finish(await totals());
        log.info({ event: "supervisor_exited", handed_over_to: successor.pid });
      })();
      stopping ??= windDown;
      void windDown.then(stopped);
    },
  });
  stop = (signal: string) => {
    if (stopping) return;
    log.info({ event: "signal", signal });
    stopping = (async () => {
      // An upgrade under way settles first: either it hands over (and this stop is moot) or this one stops.
      await upgrades!.settled();
      if (windDown) return windDown;
      notifier.stopping();
      await watch.close();
      // Admin and control answer until the end: /healthz says 503 while the
      // workers drain, and `ctl status` shows what is still open.
      // With the fd store, systemd holds the sockets and the BPF link for the next
      // start (`systemctl restart`): detaching here would sever its copy. A stop
      // that empties the store detaches the link with the last fd.
      await supervisor.stop(!owner || (options.fdStore && fdStore.enabled));
      await predecessorDrained();
      control?.close(!owner);
      admin?.close();
      log.info({ event: "supervisor_exited" });
    })().then(stopped);
  };
  if (stopSignal !== undefined) stop(stopSignal);
  for (const source of earlyReloads) requestReload(source);

  try {
    admin = await startAdmin(supervisor, options.admin.host, options.admin.port, log, inheritance?.admin !== undefined ? dupFd(inheritance.admin) : undefined);
    const startControlSocket = async (): Promise<void> => {
      control = await startControl(supervisor, options.runtimeDir, log, () => upgrades!.request(), inheritance?.control !== undefined ? dupFd(inheritance.control) : undefined);
    };
    // A successor answers `ctl` only once it is the service: until then the predecessor
    // answers (and refuses a reload or a second upgrade); the socket queues meanwhile.
    if (!predecessor) await startControlSocket();
    await supervisor.start(plan, (admin.address() as import("node:net").AddressInfo).port);
    if (predecessor) {
      owner = true;
      predecessor.serving(supervisor.pool.current?.number ?? 0);
      await predecessor.main;
      await startControlSocket();
    }
  } catch (err) {
    // TERM/INT during the first start: an operator's stop, not a failure.
    if (stopping) {
      await finished;
      return 0;
    }
    await watch.close();
    await supervisor.stop(!owner).catch(() => undefined);
    admin?.close();
    control?.close(!owner);
    return failStart(err);
  }
  if (inheritance) closeInheritance(inheritance);
  if (predecessor) {
    // Serving on what was handed over: the predecessor drains, and has said MAINPID= this one.
    mainProcess = true;
    syncFdStore();
    log.info({ event: "upgrade_completed", predecessor_pid: predecessor.pid, generation: supervisor.pool.current?.number });
  }
  if (!stopping) notifier.ready(supervisor, predecessor !== undefined);
  await finished;
  return 0;
}
