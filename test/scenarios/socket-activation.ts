// Scenario, run by test/socket-activation.test.ts inside `unshare -n`: a socket
// unit's listener passed to a supervisor whose steering may pick BPF, which must
// never be attached to the machine's own namespace. `--steering auto` (the
// shipped unit's) and then `--steering bpf`, each under the suite's service
// manager with the unit's socket and the fd store, as the shipped units run it.
import { listeningSockets } from "../../supervisor/listeners/listening-sockets.js";
import type { ServiceManager } from "../helpers/service-manager.js";
import { socketUnit } from "../helpers/socket-unit.js";
import { exchange } from "../helpers/net.js";
import type { LogLine } from "../helpers/supervisor.js";
import { netnsIno, netnsLinks, runScenario } from "./netns-lib.js";

const ECHOES = 5;

/** Whichever comes first: serving, or a start that failed (which the manager would restart, again and again). */
const started = (m: ServiceManager): Promise<LogLine> => m.waitFor((l) => l.event === "supervisor_ready" || l.event === "start_failed", 30_000, 0);

runScenario(async () => {
  const unit = await socketUnit();
  const { port, inode } = unit;
  const manager = unit.manager;
  const links = (): number => netnsLinks(netnsIno()).length;

  const auto = manager("auto", "run-auto");
  let autoResult;
  try {
    auto.start();
    const first = await started(auto);
    const echoes: boolean[] = [];
    if (first.event === "supervisor_ready") {
      for (let i = 0; i < ECHOES; i++) echoes.push((await exchange(port, `echo ${i}`)).toString() === `echo ${i}`);
    }
    autoResult = {
      first,
      fallbacks: auto.logs.filter((l) => l.event === "steering_fallback"),
      echoes,
      onPort: listeningSockets().filter((s) => s.port === port).map((s) => s.inode),
      links: links(),
      starts: auto.starts.length,
    };
  } finally {
    await auto.stop();
  }

  const bpf = manager("bpf", "run-bpf");
  let bpfResult;
  try {
    bpf.start();
    const first = await started(bpf);
    bpfResult = {
      first,
      events: bpf.logs.filter((l) => l.pid === first.pid).map((l) => l.event),
      // The unit's socket outlives the refused start: systemd (here the manager) holds it.
      onPort: listeningSockets().filter((s) => s.port === port).map((s) => s.inode),
    };
  } finally {
    await bpf.stop();
  }
  const linksAfter = links();
  await unit.close();
  return { inode, auto: autoResult, bpf: bpfResult, linksAfter };
}, 90_000);
