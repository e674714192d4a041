// Bare Node.js on this machine, in the same run: the yardstick for what every
// switchyard process costs anyway. A reload starts --workers Node processes, so
// its CPU is set against as many `node -e 0`; every switchyard process is a Node
// process, so its idle RssAnon is set against an idle `node`.
import { run, sleep, start, stop } from "../procs.js";
import { totalAnonRss } from "../procfs.js";
import { median } from "../record.js";

export class NodeBaseline {
  /** CPU (user + system) of one `node -e 0`, ms, one sample per start. */
  readonly startCpuMs: number[] = [];
  /** RssAnon of an idle `node` once it settled, bytes, one sample per measurement. */
  readonly idleRssAnon: number[] = [];

  startCpu(): number {
    return median(this.startCpuMs);
  }

  idleAnon(): number {
    return median(this.idleRssAnon);
  }
}

/**
 * Starts `node -e 0` `runs` times, one after another. bash's `time` reads the
 * child's rusage, to the microsecond; /proc's cutime would cut each sample to
 * 10 ms, a tenth of the figure.
 */
export async function measureNodeStart(b: NodeBaseline, runs: number): Promise<void> {
  for (let i = 0; i < runs; i++) {
    const r = await run("node-e-0", "bash", ["-c", 'TIMEFORMAT="%3U %3S"; time "$0" -e 0', process.execPath], 30_000);
    const m = r.output.match(/^(\d+\.\d+) (\d+\.\d+)\s*$/m);
    if (r.code !== 0 || !m) throw new Error(`node -e 0 under bash's time printed no times (exit ${r.code}): ${r.output.trim().slice(-200)}`);
    b.startCpuMs.push((Number(m[1]) + Number(m[2])) * 1000);
  }
}

/** RssAnon of an idle `node` once it stopped moving: three readings 250 ms apart within 64 KiB, after 1 s (bounded: 10 s). */
export async function measureNodeIdle(b: NodeBaseline): Promise<void> {
  const p = start("node-idle", process.execPath, ["-e", "setInterval(() => {}, 1e9)"]);
  try {
    await sleep(1000);
    const readings: number[] = [];
    const deadline = performance.now() + 9000;
    for (;;) {
      readings.push(totalAnonRss([p.pid]));
      const last = readings.slice(-3);
      if (last.length === 3 && Math.max(...last) - Math.min(...last) <= 64 * 1024) break;
      if (performance.now() > deadline) break;
      await sleep(250);
    }
    if (readings.at(-1)! > 0) b.idleRssAnon.push(readings.at(-1)!);
  } finally {
    await stop(p);
  }
}
