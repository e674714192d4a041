// The systemd unit and `make install`'s script: install.sh lays out a
// self-contained tree (staged with DESTDIR, never touching /etc here), and
// `systemd-analyze verify` accepts the unit exactly as installed.
import test, { type ExecutionContext } from "ava";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { repoRoot, runCommand, tempDir } from "./helpers/supervisor.js";
import { scenarioResult } from "./helpers/netns.js";
import { bundleIfCurrent } from "../common/bundle-choice.js";

const unitSource = path.join(repoRoot, "systemd/switchyard.service");
const installScript = path.join(repoRoot, "systemd/install.sh");

const run = runCommand;

/** The [Service] settings of a unit file, key → values in order. */
function settings(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of unit.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

test("the unit: Type=notify, reload through ctl, restart on failure, stop timeout above the drain timeout, capabilities for BPF", (t) => {
  const s = settings(fs.readFileSync(unitSource, "utf8"));
  const one = (k: string) => s.get(k)?.[0];
  t.is(one("Type"), "notify");
  t.is(one("ExecStart"), "/usr/local/bin/switchyard run --config /etc/switchyard/config.json --fd-store");
  t.is(one("FileDescriptorStoreMax"), "16384");
  t.is(one("ExecReload"), "/usr/local/bin/switchyard ctl reload");
  t.is(one("Restart"), "on-failure");
  t.is(one("RuntimeDirectory"), "switchyard");
  t.is(one("KillMode"), "mixed");
  // The default drain timeout is 30 s; the supervisor kills leftovers 2 s after it.
  t.true(Number(one("TimeoutStopSec")?.replace(/s$/, "")) > 32);
  t.deepEqual(one("CapabilityBoundingSet")?.split(" ").sort(), ["CAP_BPF", "CAP_KILL", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID", "CAP_SYS_ADMIN", "CAP_SYS_NICE"]);
  for (const [k, v] of [["NoNewPrivileges", "yes"], ["ProtectSystem", "strict"], ["ProtectHome", "yes"], ["PrivateTmp", "yes"]]) t.is(one(k!), v, k);
  t.false(s.has("MemoryDenyWriteExecute"), "V8 needs W+X memory");
});

test("install.sh with DESTDIR: the tree, the command, the config (kept on reinstall), the unit with PREFIX's paths; no daemon-reload", async (t) => {
  const destdir = tempDir("switchyard-install-");
  t.teardown(() => fs.rmSync(destdir, { recursive: true, force: true }));
  const prefix = "/opt/switchyard";
  const first = await run(installScript, [], { DESTDIR: destdir, PREFIX: prefix });
  t.is(first.code, 0, first.stderr);
  t.regex(first.stdout, /no daemon-reload/);
  const lib = path.join(destdir, prefix, "lib/switchyard");
  for (const f of ["package.json", "bin/switchyard.js", "dist/cli/main.js", "dist/supervisor/main.js", "dist/supervisor/bundle.js", "dist/worker/main.js", "dist/worker/bundle.js", "native/build/Release/switchyard.node", "native/build/steering.bpf.o", "node_modules/chokidar/package.json", "config/examples/default.json", "ops/grafana-dashboard.json", "ops/prometheus-alerts.yml"]) {
    t.true(fs.existsSync(path.join(lib, f)), `${f} installed`);
  }
  // Copied with their times: the installed tree runs its bundles when the built one does (common/bundle-choice.ts).
  for (const [bundle, modules, dirs] of [
    ["dist/supervisor/bundle.js", "dist/supervisor/main.js", ["supervisor", "common", "native", "config"]],
    ["dist/worker/bundle.js", "dist/worker/main.js", ["worker", "common", "native", "config"]],
  ] as const) {
    const choice = (root: string): string => path.relative(root, bundleIfCurrent(path.join(root, bundle), path.join(root, modules), dirs.map((d) => path.join(root, "dist", d))));
    t.is(choice(lib), choice(repoRoot), `the installed tree runs ${choice(repoRoot)}`);
  }
  t.false(fs.existsSync(path.join(lib, "dist/test")), "tests are not installed");
  t.false(fs.existsSync(path.join(lib, "node_modules/ava")), "dev dependencies are not installed");
  t.false(fs.existsSync(path.join(lib, "node_modules/prom-client")), "prom-client, kept for the tests only, is not installed");
  const wrapper = path.join(destdir, prefix, "bin/switchyard");
  t.is(fs.statSync(wrapper).mode & 0o777, 0o755);
  const exec = /^exec "([^"]+)" "([^"]+)" "\$@"$/m.exec(fs.readFileSync(wrapper, "utf8"));
  t.truthy(exec, "the command execs node on the installed CLI");
  t.true(fs.existsSync(exec![1]!), `node at ${exec![1]}`);
  t.is(exec![2], `${prefix}/lib/switchyard/bin/switchyard.js`);
  const config = path.join(destdir, "etc/switchyard/config.json");
  t.deepEqual(JSON.parse(fs.readFileSync(config, "utf8")), JSON.parse(fs.readFileSync(path.join(repoRoot, "config/examples/default.json"), "utf8")));
  const unit = settings(fs.readFileSync(path.join(destdir, "etc/systemd/system/switchyard.service"), "utf8"));
  t.deepEqual(unit.get("ExecStart"), [`${prefix}/bin/switchyard run --config /etc/switchyard/config.json --fd-store`]);
  t.deepEqual(unit.get("ExecReload"), [`${prefix}/bin/switchyard ctl reload`]);

  // The installed tree runs on its own: its CLI checks the installed config.
  const check = await run(process.execPath, [path.join(lib, "bin/switchyard.js"), "check", "--config", config]);
  t.is(check.code, 0, check.stderr);

  // A reinstall replaces the program but keeps the operator's config.
  fs.writeFileSync(config, '{"Apps":[{"Name":"mine","Ports":[7000],"Targets":["127.0.0.1:7001"]}]}');
  const second = await run(installScript, [], { DESTDIR: destdir, PREFIX: prefix });
  t.is(second.code, 0, second.stderr);
  t.regex(fs.readFileSync(config, "utf8"), /"mine"/);
  t.deepEqual(fs.readdirSync(path.join(destdir, prefix, "lib")), ["switchyard"], "no staging or old tree left behind");
});

test("systemd-analyze verify accepts the unit as installed", async (t) => {
  if (spawnSync("sh", ["-c", "command -v systemd-analyze"]).status !== 0) {
    t.log("systemd-analyze not installed (Debian package systemd; `make test` installs it): skipped");
    t.pass();
    return;
  }
  // Installed for real into a temporary prefix (no DESTDIR), so that ExecStart and
  // ExecReload name a command that exists and runs; the unit goes to a temporary directory.
  const root = tempDir("switchyard-verify-");
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const env = { PREFIX: path.join(root, "prefix"), SYSCONFDIR: path.join(root, "etc"), UNITDIR: path.join(root, "units") };
  const install = await run(installScript, [], env);
  t.is(install.code, 0, install.stderr);
  t.regex(install.stdout, /no daemon-reload/);
  const command = path.join(root, "prefix/bin/switchyard");
  const check = await run(command, ["check", "--config", path.join(root, "etc/switchyard/config.json")]);
  t.is(check.code, 0, `the installed command runs: ${check.stderr}`);

  const unit = path.join(root, "units/switchyard.service");
  const verify = await run("systemd-analyze", ["verify", unit]);
  // verify exits 0 even on settings it ignores; those warnings are on stderr.
  t.is(verify.code, 0, verify.stderr);
  t.is(verify.stderr.trim(), "", "no warnings");

  // The example socket unit (socket activation) is well-formed next to the service.
  fs.copyFileSync(path.join(repoRoot, "systemd/switchyard.socket"), path.join(root, "units/switchyard.socket"));
  const socketVerify = await run("systemd-analyze", ["verify", path.join(root, "units/switchyard.socket")]);
  t.is(socketVerify.code, 0, socketVerify.stderr);
  t.is(socketVerify.stderr.trim(), "", "no warnings for the socket unit");

  // The check can fail: a misspelt setting is reported.
  const broken = path.join(root, "units/switchyard-broken.service");
  fs.writeFileSync(broken, fs.readFileSync(unit, "utf8").replace("KillMode=mixed", "KillMode=gently"));
  const bad = await run("systemd-analyze", ["verify", broken]);
  t.regex(bad.stderr, /KillMode|kill mode/i);
});

// The three ops-unit-caps scenarios run one at a time: each starts a supervisor whose
// first worker must be healthy within its --start-timeout of 3 s, which three at once
// (with install.sh and systemd-analyze beside them) miss on a busy 2-core machine.
interface CapsResult {
  capBnd: string;
  mode: string;
  tags: string[];
  uids: number[];
  reloads: string[];
  abandoned: boolean;
  exited: string | null;
  abandonedAlive: boolean[];
  /** Nice values of the threads of: the supervisor, the loaded spare before the first reload, generation 2's worker. */
  supervisorNice: number[];
  spareNice: number[];
  workerNice: number[];
  /** The first reload adopted that spare; generation 2's worker is it. */
  spareAdopted: boolean;
  workerIsSpare: boolean;
  /** Codes of the spare_priority_kept lines (a spare's priority could not be raised back). */
  priorityKept: string[];
  error?: string;
}

/** The unit's CapabilityBoundingSet, lower case; undefined (the test passed as skipped) without setpriv or unshare. */
function unitCapsOrSkip(t: ExecutionContext): string[] | undefined {
  if (spawnSync("sh", ["-c", "command -v setpriv && command -v unshare"]).status !== 0) {
    t.log("setpriv or unshare missing (Debian package util-linux; `make deps`): skipped");
    t.pass();
    return undefined;
  }
  return (settings(fs.readFileSync(unitSource, "utf8")).get("CapabilityBoundingSet")?.[0] ?? "").toLowerCase().split(" ");
}

// CAP_BPF 39, CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21, CAP_NET_BIND_SERVICE 10, CAP_SETUID 7, CAP_SETGID 6, CAP_KILL 5, CAP_SYS_NICE 23.
const CAP_BITS: Record<string, bigint> = { cap_bpf: 39n, cap_net_admin: 12n, cap_sys_admin: 21n, cap_net_bind_service: 10n, cap_setuid: 7n, cap_setgid: 6n, cap_kill: 5n, cap_sys_nice: 23n };

test.serial("the unit's capability bounding set is enough: BPF steering, port 80, workers as nobody, SIGKILL of a nobody worker (rollback), a spare given its priority back", async (t) => {
  const unitCaps = unitCapsOrSkip(t);
  if (!unitCaps) return;
  const r = await scenarioResult<CapsResult>(t, "ops-unit-caps", { env: { SWITCHYARD_TEST_CAPS: unitCaps.join(",") } });
  t.is(BigInt(`0x${r.capBnd}`), unitCaps.reduce((bits, c) => bits | (1n << CAP_BITS[c]!), 0n), "the supervisor ran with exactly the unit's bounding set");
  t.is(r.mode, "bpf");
  t.deepEqual(r.tags, ["a", "a"]);
  t.deepEqual(r.uids, [65534], "workers dropped to nobody");
  t.deepEqual(r.reloads, ["reload_succeeded", "reload_failed"]);
  t.true(r.abandoned);
  t.is(r.exited, "SIGKILL");
  t.deepEqual(r.abandonedAlive, [false]);
  // The spare loaded at nice +5; adopted, every thread of it serves at the supervisor's priority.
  t.is(r.supervisorNice.length, 1);
  t.deepEqual(r.spareNice, [r.supervisorNice[0]! + 5]);
  t.true(r.spareAdopted, "the reload did not adopt the loaded spare");
  t.true(r.workerIsSpare);
  t.deepEqual(r.workerNice, r.supervisorNice, "the adopted spare serves at another priority than the supervisor's");
  t.deepEqual(r.priorityKept, []);
});

test.serial("without CAP_SYS_NICE a spare's priority cannot be raised back (why the unit keeps it): said once, and no worker serves at a spare's priority", async (t) => {
  const unitCaps = unitCapsOrSkip(t);
  if (!unitCaps) return;
  const r = await scenarioResult<CapsResult>(t, "ops-unit-caps", { env: { SWITCHYARD_TEST_CAPS: unitCaps.filter((c) => c !== "cap_sys_nice").join(",") } });
  t.is(BigInt(`0x${r.capBnd}`) & (1n << CAP_BITS.cap_sys_nice!), 0n);
  t.deepEqual(r.reloads, ["reload_succeeded", "reload_failed"]);
  // Lowering a child's priority needs no capability: the spare loaded at nice +5 ...
  t.deepEqual(r.spareNice, [r.supervisorNice[0]! + 5]);
  // ... but raising it back fails, once: that spare is discarded and the worker started then serves at the supervisor's priority.
  t.deepEqual(r.priorityKept, ["EACCES"]);
  t.false(r.spareAdopted);
  t.false(r.workerIsSpare);
  t.deepEqual(r.workerNice, r.supervisorNice, "a worker serves at a spare's lower priority");
});

test.serial("without CAP_KILL the supervisor could not kill its own nobody workers (why the unit keeps it)", async (t) => {
  const unitCaps = unitCapsOrSkip(t);
  if (!unitCaps) return;
  const r = await scenarioResult<CapsResult>(t, "ops-unit-caps", { env: { SWITCHYARD_TEST_CAPS: unitCaps.filter((c) => c !== "cap_kill").join(",") } });
  t.is(BigInt(`0x${r.capBnd}`) & (1n << CAP_BITS.cap_kill!), 0n);
  t.is(r.mode, "bpf");
  t.true(r.abandoned);
  t.is(r.exited, "still running");
  t.deepEqual(r.abandonedAlive, [true]);
});
