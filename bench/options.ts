// How long and how often each measurement runs: the full run (`make bench`,
// under 20 minutes) and the quick one (`make bench-quick`, under 3).

export interface BenchOptions {
  quick: boolean;
  /** Interleaved rounds per comparison (A B C D, A B C D, …). */
  rounds: number;
  /** Worker processes for switchyard (--workers) and threads for HAProxy (nbthread). */
  workers: number;
  iperfSeconds: number;
  wrkSeconds: number;
  /** Connections held open for the memory-per-connection measurement. */
  idleConnections: number;
  /** What idleConnections would be without the RLIMIT_NOFILE cap. */
  idleWanted: number;
  reloadLoadSeconds: number;
  reloadIntervalsMs: number[];
  /** Reload-latency samples per party and round. */
  latencySamples: number;
  /** Reloads in a row whose CPU is measured, per party and round (after one unmeasured). */
  reloadCpuSamples: number;
  /** `node -e 0` starts whose CPU is measured, per round: the yardstick for a reload's CPU. */
  nodeStartRuns: number;
  scalePorts: number[];
  /** Only these measurements run, when set (`--only steady,latency,cpu,reload,saturation,sni,scale`). */
  only?: Set<string>;
  /** Only these parties, when set (`--parties haproxy,switchyard-bpf`). */
  parties?: Set<string>;
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Most connections one process may carry both ends of, under this RLIMIT_NOFILE. */
export function idleConnectionsFor(nofile: number, wanted: number): number {
  return Math.min(wanted, Math.floor((nofile - 1000) / 2 / 500) * 500);
}

export function parseOptions(argv: string[], nofile: number): BenchOptions {
  const quick = argv.includes("--quick");
  const only = flag(argv, "--only");
  const workers = Number(flag(argv, "--workers") ?? 2);
  const base: BenchOptions = quick
    ? { quick, rounds: 1, workers, iperfSeconds: 2, wrkSeconds: 3, idleConnections: 2000, idleWanted: 2000, reloadLoadSeconds: 5, reloadIntervalsMs: [1000, 100], latencySamples: 3, reloadCpuSamples: 3, nodeStartRuns: 10, scalePorts: [10, 1000] }
    : { quick, rounds: 3, workers, iperfSeconds: 3, wrkSeconds: 5, idleConnections: 10_000, idleWanted: 10_000, reloadLoadSeconds: 20, reloadIntervalsMs: [1000, 100], latencySamples: 5, reloadCpuSamples: 5, nodeStartRuns: 10, scalePorts: [10, 1000, 20_000] };
  base.idleConnections = idleConnectionsFor(nofile, base.idleConnections);
  const rounds = flag(argv, "--rounds");
  if (rounds) base.rounds = Number(rounds);
  if (only) base.only = new Set(only.split(","));
  const scale = flag(argv, "--scale-ports");
  if (scale) base.scalePorts = scale.split(",").map(Number);
  const parties = flag(argv, "--parties");
  if (parties) base.parties = new Set(parties.split(","));
  return base;
}

export function wants(o: BenchOptions, measurement: string): boolean {
  return !o.only || o.only.has(measurement);
}
