import fs from "node:fs";
import path from "node:path";
import type { Plan } from "../config/plan.js";
import { loadConfigFile } from "../config/load.js";
import type { Logger } from "../common/log.js";
import { ConfigError, SwitchyardError } from "../common/errors.js";
import type { RunOptions } from "./args.js";
import { Pool } from "./workers/pool.js";
import { WorkerProcess } from "./workers/worker-process.js";
import { WorkerLaunch, type LaunchOptions } from "./workers/worker-launch.js";
import { SpareWorkers, type SpareReservation } from "./workers/spare-workers.js";
import { ReloadQueue, type ReloadResult } from "./reload/reload-queue.js";
import { SupervisorMetrics } from "./operations/metrics.js";
import { AccessLogSink } from "./operations/access-log-sink.js";
import type { ListenerProvider } from "./listeners/listener-provider.js";
import { workerCredentials } from "./workers/credentials.js";
import { TargetProber } from "./health/target-prober.js";
import { ConnectionCounters } from "./workers/connection-counters.js";
import type { HandoverState } from "./handover/handover-state.js";
import type { NamedFd } from "./handover/named-fds.js";
import { SWITCHYARD_VERSION } from "./version.js";

/** How long a reload waits for spares still loading before it starts processes of its own. */
const SPARE_WAIT_MS = 2000;

/** The supervisor's parts, wired together; one instance per process. */
export class Supervisor {
  readonly pool: Pool;
  readonly reloads: ReloadQueue;
  readonly metrics: SupervisorMetrics;
  readonly accessLog: AccessLogSink;
  readonly prober: TargetProber;
  /** Open connections per app across every worker, for MaxConnections. */
  readonly counters = new ConnectionCounters();
  readonly spares: SpareWorkers;
  lastReload: ReloadResult | undefined;
  /** Reload triggers that arrive before the first generation serves wait for it. */
  private markStarted!: () => void;
  private readonly started = new Promise<void>((resolve) => (this.markStarted = resolve));
  readonly startedAt = Date.now();
  readonly version = SWITCHYARD_VERSION;
  /**
   * An upgrade is handing this supervisor's sockets to a successor: no reload
   * may change them meanwhile. Set back if the upgrade fails.
   */
  upgrading = false;
  /** Called after every cut-over (the first generation's included), e.g. to bring systemd's fd store up to date. */
  onCutOver: () => void = () => undefined;
  /** Called when a reload starts, awaited before the file is read, and when it ends (sd_notify, config watch). */
  onReloadStart: () => void | Promise<void> = () => undefined;
  /**
   * Notes the config file's content as read by this reload; resolves whether it
   * differs from what the last reload (or the start) read. A reload asked for
   * by the watch alone is skipped when it does not: the watch saw a save that a
   * reload triggered otherwise (SIGHUP, ctl) had already read.
   */
  rememberFile: () => Promise<boolean> = async () => true;
  onReloadEnd: (r: ReloadResult) => void = () => undefined;

  constructor(readonly options: RunOptions, readonly provider: ListenerProvider, readonly log: Logger) {
    fs.mkdirSync(options.runtimeDir, { recursive: true, mode: 0o755 });
    const credentials = workerCredentials(options.user);
    this.accessLog = new AccessLogSink(options.accessLog, log);
    this.prober = new TargetProber(
      {
        // Draining workers too: switchyard_target_up is the min over live workers.
        onChange: (states) => {
          for (const w of this.pool.liveWorkers()) w.sendTargetStates(states);
        },
        onCheck: (app, target, ok) => this.metrics.healthChecks.inc({ app, target, result: ok ? "ok" : "failed" }),
        onForget: (app, target) => {
          for (const result of ["ok", "failed"]) this.metrics.healthChecks.remove({ app, target, result });
        },
      },
      log,
    );
    this.spares = new SpareWorkers({
      count: options.spareWorkers,
      launch: () => WorkerLaunch.start(this.launchOptions()),
      // After an upgrade adopted its predecessor's counters, spares started before hold the old table;
      // after an install, spares started before run the old code.
      fits: (launch) => launch.countersFd === this.counters.fd && launch.runsCurrentCode(),
      busy: () => this.pool.starting !== undefined,
      log,
    });
    this.pool = new Pool({
      workers: options.workers,
      maxDraining: options.maxDraining,
      startTimeoutMs: options.startTimeoutMs,
      log,
      provider,
      spawn: (o, events) => {
        const counters = this.counters.forWorker(o.plan, () => this.pool.generations().map((g) => g.plan));
        try {
          const launch = this.spares.take() ?? WorkerLaunch.start(this.launchOptions());
          // A replacement for a crashed worker took a spare: start the next one (a reload fills after its cut-over).
          if (this.pool.starting === undefined) setImmediate(() => this.spares.fill());
          return this.metrics.track(new WorkerProcess(
            {
              ...o, credentials, drainTimeoutMs: options.drainTimeoutMs, startTimeoutMs: options.startTimeoutMs,
              maxConnections: options.maxConnections, overloadLagMs: options.overloadLagMs, dataPath: options.dataPath, counters: counters ?? null, targetStates: this.prober.states(),
              recycle: (launch) => this.reuse(launch),
              log,
            },
            events,
            launch,
          ));
        } catch (err) {
          if (counters) this.counters.release(counters.row);
          throw err;
        }
      },
      beforeGeneration: (workers) => this.spares.loaded(workers, SPARE_WAIT_MS),
      observe: {
        onDrained: (w, final) => this.metrics.retire(w, final.metrics),
        onMetrics: (w, seq, m) => this.metrics.onWorkerMetrics(w, seq, m),
        onClosed: (w) => {
          this.metrics.retire(w);
          if (w.counterRow !== undefined) this.counters.release(w.counterRow);
        },
        onAccessLog: (_w, stream) => this.accessLog.attach(stream),
      },
    });
    this.metrics = new SupervisorMetrics(this.pool, () => provider.steeredCounts(), () => this.accessLog.droppedLines);
    this.reloads = new ReloadQueue((source) => this.reload(source));
  }

  /**
   * A place among the spares for a worker told to drain, if it may serve
   * another generation: not while stopping or handing over to a successor,
   * not past --worker-generations, not once its code was replaced on disk.
   */
  private reuse(launch: WorkerLaunch): SpareReservation | undefined {
    if (this.pool.isStopping || this.upgrading) return undefined;
    if (launch.recycled + 1 >= this.options.workerGenerations || !launch.runsCurrentCode()) return undefined;
    return this.spares.reserve();
  }

  /** What every worker process is started with, spare or not. */
  private launchOptions(): LaunchOptions {
    return {
      env: process.env,
      drainTimeoutMs: this.options.drainTimeoutMs,
      accessLog: this.accessLog.enabled,
      countersFd: this.counters.fd,
      compileCacheDir: path.join(this.options.runtimeDir, "compile-cache"),
    };
  }

  /** First generation; throws (CONFIG_INVALID, LISTEN_FAILED, WORKER_UNHEALTHY) if it cannot serve. */
  async start(plan: Plan, adminPort: number): Promise<void> {
    await this.pool.deploy(plan);
    this.prober.setPlan(plan);
    this.spares.fill();
    this.markStarted();
    this.onCutOver();
    this.log.info({ event: "supervisor_ready", generation: this.pool.current?.number, mode: this.provider.mode, admin_host: this.options.admin.host, admin_port: adminPort, runtime_dir: this.options.runtimeDir });
  }

  private async reload(source: string): Promise<ReloadResult> {
    await this.started;
    if (!(await this.rememberFile()) && source === "file") {
      this.log.info({ event: "reload_skipped", source, reason: "the file holds what the last reload read" });
      return this.lastReload ?? { ok: true, generation: this.pool.current?.number ?? 0, durationMs: 0, source, at: new Date().toISOString() };
    }
    const began = Date.now();
    const at = new Date(began).toISOString();
    if (this.upgrading) {
      const message = "an upgrade is handing this supervisor over to a new one; reload there once it serves";
      this.log.warn({ event: "reload_refused", source, code: "UPGRADE_IN_PROGRESS" });
      return { ok: false, code: "UPGRADE_IN_PROGRESS", message, durationMs: 0, source, at };
    }
    this.log.info({ event: "reload_started", source });
    let result: ReloadResult;
    try {
      await this.onReloadStart();
      const plan = await loadConfigFile(this.options.config);
      const gen = await this.pool.deploy(plan);
      // Only once it serves: a rolled-back plan must not drop the states of the one still serving.
      this.prober.setPlan(plan);
      this.onCutOver();
      result = { ok: true, generation: gen.number, durationMs: Date.now() - began, source, at };
      this.log.info({ event: "reload_succeeded", source, generation: gen.number, duration_ms: result.durationMs });
    } catch (err) {
      const e = err instanceof SwitchyardError ? err : new SwitchyardError("RELOAD_FAILED", (err as Error).message, { cause: err });
      const problems = e instanceof ConfigError ? e.problems : undefined;
      result = { ok: false, code: e.code, message: e.message, ...(problems ? { problems } : {}), durationMs: Date.now() - began, source, at };
      this.log.error({ event: "reload_failed", source, code: e.code, reason: e.message, problems, current_generation: this.pool.current?.number });
    }
    // After the cut-over (or the rollback), replacing the spares this reload took.
    this.spares.fill();
    this.metrics.reloads.inc({ result: result.ok ? "success" : "failure" });
    this.metrics.reloadDuration.observe(result.durationMs / 1000);
    this.lastReload = result;
    this.onReloadEnd(result);
    return result;
  }

  /** What a successor (an upgrade) or systemd's fd store needs: fresh fds under their names, and what they are for. */
  handover(): { fds: NamedFd[]; state: HandoverState } {
    const h = this.provider.handover();
    return { fds: h.fds, state: { version: 1, mode: this.provider.mode, apps: h.apps, generation: this.pool.lastNumber } };
  }

  /**
   * `release`: another process holds the sockets and the BPF link now (a
   * successor, systemd's fd store); they are let go of, not closed or detached (pool.ts).
   */
  async stop(release = false): Promise<void> {
    this.log.info({ event: "supervisor_stopping", drain_timeout_ms: this.options.drainTimeoutMs, release });
    this.prober.stop();
    this.spares.stop();
    await this.pool.stop(release);
    await this.accessLog.close();
  }
}
