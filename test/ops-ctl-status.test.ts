// `switchyard ctl status` shows a person the live workers (pid, state,
// connections) and the apps (ports, targets with health); `--json` is /status.
// `ctl reload` waits for the outcome: exit 0 on success, 1 on rollback (what
// makes `systemctl reload` fail).
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { runCli, startSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget } from "./helpers/net.js";
import { within } from "./helpers/core.js";

interface StatusJson {
  healthy: boolean;
  generation: number;
  lastReload: { ok: boolean; generation?: number; code?: string } | null;
  generations: { number: number; state: string; workers: { index: number; pid: number; state: string; connections: number; accepted: number }[] }[];
  workers: { generation: number; generationState: string; index: number; pid: number }[];
  apps: { name: string; ports: number[]; targets: { target: string; up: boolean }[] }[];
}

/** The table's rows (after the header line) whose cells are the given values. */
function rowsWith(table: string, cells: string[]): string[] {
  return table.split("\n").filter((line) => {
    const got = line.trim().split(/\s{2,}/);
    return cells.every((c, i) => got[i] === c);
  });
}

test("ctl status: workers with pid, state and connections, apps with ports and target health; --json matches /status; ctl reload's exit code", async (t) => {
  const target = await startTarget("echo");
  t.teardown(() => target.close());
  const [w1, w2, d1, d2, refused] = (await freePorts(5)) as [number, number, number, number, number];
  const webTarget = `127.0.0.1:${target.port}`;
  const deadTarget = `127.0.0.1:${refused}`;
  const cfg = (webPorts: number[]) => ({
    Apps: [
      { Name: "web", Ports: webPorts, Addresses: ["127.0.0.1"], Targets: [webTarget] },
      { Name: "down", Ports: [d1, d2], Addresses: ["127.0.0.1"], Targets: [deadTarget], ConnectTimeoutMs: 500 },
    ],
  });
  const sup = await startSupervisor({ config: cfg([w1, w2]), workers: 2, drainTimeout: 20, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop("SIGKILL"));
  const ctl = (...args: string[]) => runCli(["ctl", "--runtime-dir", sup.runtimeDir, ...args]);
  const adminStatus = async (): Promise<StatusJson> => JSON.parse((await sup.admin("/status")).body) as StatusJson;

  // One connection stays open; one to "down" fails, so its target is marked down.
  const held = net.connect({ port: w1, host: "127.0.0.1" });
  t.teardown(() => held.destroy());
  await once(held, "connect");
  held.write("x");
  await within(once(held, "data"), 5000, "echo on the held connection");
  t.is((await exchange(d1, "nobody home").catch(() => Buffer.alloc(0))).length, 0);
  await sup.waitFor((l) => l.event === "upstream_connect_failed" && l.app === "down", 5000);

  const text = await ctl("status");
  t.is(text.code, 0, text.stderr);
  const s = await adminStatus();
  t.regex(text.stdout, /^supervisor: pid \d+, version \d+\.\d+\.\d+, started \d{4}-\d\d-\d\dT/);
  t.regex(text.stdout, /\nhealthy: yes\s+generation: 1\s+steering: ports/);
  t.regex(text.stdout, /last reload: none/);
  const gen1 = s.generations.find((g) => g.number === 1)!;
  t.is(gen1.workers.length, 2);
  // The flat list holds the same worker processes.
  t.deepEqual(s.workers.map((w) => [w.generation, w.generationState, w.pid]), gen1.workers.map((w) => [1, "serving", w.pid]));
  for (const w of gen1.workers) {
    const rows = rowsWith(text.stdout, ["1", "serving", String(w.index), String(w.pid), "serving"]);
    t.is(rows.length, 1, `a row for worker ${w.pid} in:\n${text.stdout}`);
    t.is(rows[0]!.trim().split(/\s+/)[5], String(w.connections));
  }
  t.deepEqual(gen1.workers.map((w) => w.connections).sort(), [0, 1], "the held connection is on one worker");
  t.is(gen1.workers.reduce((a, w) => a + w.accepted, 0), 2, "accepted: the held connection and the failed one");
  t.is(rowsWith(text.stdout, ["web", `${Math.min(w1, w2)}${Math.abs(w1 - w2) === 1 ? "-" : ","}${Math.max(w1, w2)}`, `${webTarget} (up)`]).length, 1, text.stdout);
  t.is(rowsWith(text.stdout, ["down", `${Math.min(d1, d2)}${Math.abs(d1 - d2) === 1 ? "-" : ","}${Math.max(d1, d2)}`, `${deadTarget} (DOWN)`]).length, 1, text.stdout);

  const json = await ctl("--json", "status");
  t.is(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as StatusJson & { uptimeSeconds?: number };
  const comparable = (x: StatusJson) => ({ healthy: x.healthy, generation: x.generation, lastReload: x.lastReload, generations: x.generations, apps: x.apps });
  t.deepEqual(comparable(parsed), comparable(await adminStatus()));
  t.deepEqual(parsed.apps, [
    { name: "web", ports: [w1, w2].sort((a, b) => a - b), addresses: ["127.0.0.1/32"], targets: [{ target: webTarget, up: true }] },
    { name: "down", ports: [d1, d2].sort((a, b) => a - b), addresses: ["127.0.0.1/32"], targets: [{ target: deadTarget, up: false }] },
  ] as unknown as StatusJson["apps"]);

  // ctl reload waits for the new generation; the old one drains the held connection.
  const reload = await ctl("reload");
  t.is(reload.code, 0, reload.stderr);
  t.regex(reload.stdout, /^reloaded: generation 2 serving/);
  // The file watch may see this save too: then ctl's request joins one more reload, whose outcome it reports.
  sup.writeConfig(cfg([w1]));
  const reload2 = await ctl("reload");
  t.is(reload2.code, 0, reload2.stderr);
  const current = Number(/^reloaded: generation (\d+) serving/.exec(reload2.stdout)?.[1]);
  t.true(current >= 3, reload2.stdout);
  const during = await ctl("status");
  t.regex(during.stdout, new RegExp(`generation: ${current}\\s`));
  const draining = rowsWith(during.stdout, ["1", "draining"]);
  t.is(draining.length, 1, `the worker holding the connection drains:\n${during.stdout}`);
  t.is(draining[0]!.trim().split(/\s+/)[5], "1");
  t.is(rowsWith(during.stdout, [String(current), "serving"]).length, 2, during.stdout);
  t.is(rowsWith(during.stdout, ["web", String(w1), `${webTarget} (up)`]).length, 1, during.stdout);

  // A rolled-back reload: exit 1, the reason and the path on stderr; the old config serves on.
  sup.writeConfig({ Apps: [{ Name: "web", Ports: [w1, 70000], Targets: [webTarget] }] });
  const failed = await ctl("reload");
  t.is(failed.code, 1);
  t.regex(failed.stderr, /failed: CONFIG_INVALID/);
  t.regex(failed.stderr, /Apps\[0\]\.Ports\[1\]/);
  const after = JSON.parse((await ctl("--json", "status")).stdout) as StatusJson;
  t.like(after, { healthy: true, generation: current, lastReload: { ok: false, code: "CONFIG_INVALID" } });
  t.regex((await ctl("status")).stdout, /last reload: FAILED: /);
  t.is((await exchange(w1, "still here")).toString(), "still here");
});

test("ctl without a supervisor: exit 1 and a hint", async (t) => {
  const r = await runCli(["ctl", "--runtime-dir", "/nonexistent/switchyard", "status"]);
  t.is(r.code, 1);
  t.regex(r.stderr, /cannot reach \/nonexistent\/switchyard\/control\.sock: ENOENT \(is the supervisor running with this --runtime-dir\?\)/);
});
