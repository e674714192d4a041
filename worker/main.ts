// Worker entry: receives its listening fds and Plan from the supervisor,
// proxies connections, and drains when told to (or when the supervisor is gone).
import { createLogger, type Logger } from "../common/log.js";
import { CHANNEL_FD, COUNTERS_FD, dispatch, isToWorker, type FromWorker, type Handlers, type MessageOf, type ToWorker } from "../common/messages.js";
import { Channel } from "../common/channel.js";
import { receiveListeners } from "./handoff.js";
import { Acceptor } from "./acceptor.js";
import { WorkerMetrics } from "./metrics.js";
import { AccessLog } from "./access-log.js";
import { holdTheLoop, readFault } from "./fault-injection.js";
import { OverloadGuard } from "./overload-guard.js";
import { TargetHealth } from "./target-health.js";
import { CounterTable } from "../native/index.js";
import { Relay } from "../native/relay.js";
import module from "node:module";

// With NODE_COMPILE_CACHE (Node 22.1 and later; older Node has none), the code compiled
// for the imports above is written now: as root, before "start" drops privileges.
(module as { flushCompileCache?: () => void }).flushCompileCache?.();

// What one generation's work holds. A worker whose generation drained to no
// connection may be asked to become a spare again (recycled): all of it is
// then set back as it was before "start" (resetForNextGeneration).
let log: Logger = createLogger({ role: "worker" });
let acceptor: Acceptor | undefined;
let metrics: WorkerMetrics | undefined;
/** Started: fds in hand, privileges dropped; health checks answer "serving". */
let ready = false;
let fault: ReturnType<typeof readFault>;
/** --overload-lag, from "start"; null: no load shedding. */
let overloadLagMs: number | null = null;
let guard: OverloadGuard | undefined;
/** "start" came: this process works for a generation (until it exits, or is reset to a spare). */
let inGeneration = false;
let accepting = false;
/** serve() completed: every listener was listened on (and so is closed by stopAccepting()). */
let served = false;
let draining = false;
let health = new TargetHealth();
/** While draining: ends the drain at an earlier deadline than the one it has. */
let hastenDrain: ((timeoutMs: number) => void) | undefined;
/**
 * The supervisor would take this process back as a spare once the drain ends
 * with nothing cut; a later "drain" (a stop, an upgrade) may withdraw that.
 */
let recycleWanted = false;

// The process's own, kept from one generation to the next.
const accessLog = AccessLog.fromEnv();
/** The native relay's thread, started by the first generation that uses it; idle between generations. */
let relay: Relay | undefined;
/** The shared counters' mapping (its memfd is this process's for life). */
let counterTable: CounterTable | undefined;
let privilegesDropped = false;

function resetForNextGeneration(): void {
  log = createLogger({ role: "worker" });
  acceptor = undefined;
  metrics = undefined;
  ready = false;
  fault = undefined;
  overloadLagMs = null;
  guard = undefined;
  inGeneration = false;
  accepting = false;
  served = false;
  draining = false;
  health = new TargetHealth();
  hastenDrain = undefined;
  recycleWanted = false;
}

function send(msg: FromWorker): Promise<void> {
  // Resolves once the message is written: a worker about to exit must wait for that.
  return new Promise((resolve) => channel.send(msg, resolve));
}

async function start(msg: MessageOf<ToWorker, "start">): Promise<void> {
  log = createLogger({ role: "worker", generation: msg.id.generation, worker: msg.id.worker });
  fault = readFault(msg.id.worker);
  health = new TargetHealth();
  overloadLagMs = msg.overloadLagMs;
  if (fault === "crash-on-start") throw Object.assign(new Error("fault injected: crash-on-start"), { code: "FAULT_INJECTED" });
  const listeners = receiveListeners(msg.listeners);
  metrics = new WorkerMetrics(msg.plan.apps);
  const m = metrics;
  // Before the acceptor exists, let alone accepts: the first connection already avoids what the checks see down.
  health.checked(msg.targetStates);
  m.checked(msg.targetStates);
  acceptor = new Acceptor(
    msg.plan,
    listeners,
    {
      wantsAddresses: accessLog.enabled,
      relay: msg.dataPath === "native" ? (relay ??= new Relay({ pipeSize: RELAY_PIPE_BYTES })) : null,
      onAccepted: (app) => {
        if (app !== undefined) m.connectionAccepted(app);
      },
      onUpstreamFailure: (app, f) => {
        m.upstreamFailed(app, f);
        log.warn({ event: "upstream_connect_failed", app: app.name, target: f.target.label, reason: f.reason, code: f.code });
      },
      onConnected: (app, target) => m.upstreamConnected(app, target),
      onFinished: (record) => {
        m.connectionFinished(record);
        accessLog.write(record);
      },
    },
    log,
    health,
    msg.maxConnections,
    msg.counters ? { table: (counterTable ??= new CounterTable(COUNTERS_FD)), row: msg.counters.row, slots: msg.counters.slots } : null,
  );
  if (msg.credentials && !privilegesDropped) {
    // Everything privileged (the fds) is in hand: give up root. A recycled worker gave it up before.
    process.setgroups?.([]);
    process.setgid?.(msg.credentials.gid);
    process.setuid?.(msg.credentials.uid);
    privilegesDropped = true;
  }
  // Healthy, but not accepting until the supervisor cuts over to this generation:
  // a generation that is rolled back never carries a connection.
  ready = true;
  void send({ type: "started", pid: process.pid, inodes: listeners.map((l) => l.inode) });
  if (typeof fault === "object" && fault.when === "started") channel.writeRaw(fault.channelBytes);
  log.info({ event: "worker_started", listeners: listeners.length, uid: process.getuid?.(), data_path: msg.dataPath });
}

async function serve(): Promise<void> {
  if (!acceptor || draining || accepting) return;
  accepting = true;
  await acceptor.start();
  // A drain that came in while listen() ran has closed nothing: close now.
  if (draining) acceptor.stopAccepting();
  void send({ type: "serving" });
  if (typeof fault === "object" && fault.when === "serving") channel.writeRaw(fault.channelBytes);
  if (overloadLagMs !== null && !draining) {
    guard = new OverloadGuard(acceptor, overloadLagMs, log);
    guard.start();
  }
  if (fault === "lag") holdTheLoop();
  served = true;
  log.info({ event: "worker_serving", listeners: acceptor.listenerCount, uid: process.getuid?.() });
}

/**
 * The relay's pipes: 256 KiB took about a quarter less CPU per GiB than the
 * kernel's 64 KiB in bench/tools/relay-bulk.ts. Held only by a direction with
 * bytes in flight; kernel memory, not the worker's heap.
 */
const RELAY_PIPE_BYTES = 256 * 1024;

/** How long the drain deadline waits for the native relay to report the connections it closed. */
const RELAY_SHUTDOWN_WAIT_MS = 1000;

/**
 * With `recycleWanted`, the supervisor would take this process back as a
 * spare. Only a drain that ended with no connection cut (nothing of this
 * generation left: no socket, no relay connection, no timer) and with the
 * supervisor still there does so; any other ends with the process.
 */
async function drain(timeoutMs: number): Promise<void> {
  if (draining) {
    hastenDrain?.(timeoutMs);
    return;
  }
  draining = true;
  guard?.stop();
  acceptor?.stopAccepting();
  const open = acceptor?.connections ?? 0;
  log.info({ event: "worker_draining", connections: open, timeout_ms: timeoutMs });
  void send({ type: "draining", connections: open });
  const deadline = new Promise<"timeout">((resolve) => {
    let due = Date.now() + timeoutMs;
    let timer = setTimeout(() => resolve("timeout"), timeoutMs).unref();
    hastenDrain = (ms) => {
      if (Date.now() + ms >= due) return;
      due = Date.now() + ms;
      clearTimeout(timer);
      timer = setTimeout(() => resolve("timeout"), ms).unref();
    };
  });
  const outcome = await Promise.race([acceptor?.idle().then(() => "idle" as const) ?? Promise.resolve("idle" as const), deadline]);
  if (outcome === "timeout" && acceptor) {
    acceptor.closeAll();
    // The relay's connections end on its thread: their ends (access log, metrics) come back shortly.
    await Promise.race([acceptor.idle(), new Promise((resolve) => setTimeout(resolve, RELAY_SHUTDOWN_WAIT_MS).unref())]);
  }
  // Only a worker that served: one drained before its serve() completed may hold listeners it never listened on.
  if (recycleWanted && served && outcome === "idle") {
    // Its access-log lines are in the pipe before the supervisor counts this generation done.
    await accessLog.flushed();
    // A stop's "drain" that is already in the channel (the relay's report of the last end can
    // come first in the same turn of the loop) is read before deciding.
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (recycleWanted && served && outcome === "idle" && channel.connected) {
    const final = metrics?.snapshot() ?? [];
    log.info({ event: "worker_drained", outcome, recycled: true });
    resetForNextGeneration();
    await send({ type: "drained", connections: 0, metrics: final, recycled: true });
    void send({ type: "loaded" });
    return;
  }
  const cut = outcome === "timeout" ? open : 0;
  await send({ type: "drained", connections: cut, metrics: metrics?.snapshot() ?? [], recycled: false });
  log.info({ event: "worker_drained", outcome, recycled: false });
  await accessLog.close();
  channel.close();
  process.exit(0);
}

const handlers: Handlers<ToWorker> = {
  start: (msg) => {
    inGeneration = true;
    start(msg).catch((err: NodeJS.ErrnoException) => {
      log.error({ event: "worker_start_failed", err });
      void send({ type: "start-failed", code: err.code ?? "WORKER_START_FAILED", message: err.message }).then(() => process.exit(1));
    });
  },
  serve: () => {
    serve().catch((err: NodeJS.ErrnoException) => {
      // Cannot accept on a socket it holds: let the supervisor replace this worker.
      log.error({ event: "worker_serve_failed", err });
      process.exit(1);
    });
  },
  // A spare (never started, or recycled) has nothing to drain: a late "close now" for its last generation is not for it.
  drain: (msg) => {
    if (!inGeneration) return;
    recycleWanted = msg.recycle;
    void drain(msg.timeoutMs);
  },
  "health-check": (msg) => void send({ type: "health", seq: msg.seq, serving: ready && !draining && fault !== "unhealthy" }),
  "target-states": (msg) => {
    health.checked(msg.states);
    metrics?.checked(msg.states);
  },
  "metrics-request": (msg) => {
    if (metrics) void send({ type: "metrics", seq: msg.seq, metrics: metrics.snapshot() });
  },
};

const channel = new Channel(CHANNEL_FD, {
  message: (raw) => {
    if (!isToWorker(raw)) {
      log.error({ event: "unknown_message", message: raw });
      return;
    }
    dispatch(handlers, raw);
  },
  invalid: (reason, preview) => log.error({ event: "channel_invalid", reason, preview }),
  // The supervisor is gone (crash, SIGKILL): stop taking connections on its
  // sockets so a restarted supervisor can bind them, finish what is open, exit.
  close: () => {
    recycleWanted = false;
    void drain(Number(process.env.SWITCHYARD_DRAIN_TIMEOUT_MS ?? 30_000));
  },
});
// SIGTERM/SIGINT are for the supervisor, which sends "drain"; a terminal's ^C reaches the whole group.
process.on("SIGINT", () => undefined);
// USR1 is for the supervisor (reopen the access log); a `systemctl kill -s USR1` reaches the
// whole cgroup, and without a listener Node would open its inspector on 127.0.0.1:9229.
process.on("SIGUSR1", () => undefined);
// HUP reloads the supervisor, which starts new workers; Node's default would kill this one
// and cut its connections when a HUP reaches the whole group (`systemctl kill -s HUP`, a hangup).
process.on("SIGHUP", () => undefined);
process.on("SIGTERM", () => {
  recycleWanted = false;
  void drain(Number(process.env.SWITCHYARD_DRAIN_TIMEOUT_MS ?? 30_000));
});
// Everything is imported and the handlers above are in: a spare started ahead
// (supervisor/workers/spare-workers.ts) can take a plan at once. Only now: the
// supervisor adopts only loaded spares, since until here a HUP or USR1 sent to
// the whole group would kill this process or open its inspector.
void send({ type: "loaded" });
