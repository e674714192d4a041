// Without the BPF capabilities (scenario test/scenarios/bpf-fallback.ts, run in
// `unshare -n` under capsh --drop): `--steering auto` falls back to ports mode
// and says why in one log line; `--steering bpf` exits non-zero, naming what is missing.
import test, { type ExecutionContext } from "ava";
import { execFileSync } from "node:child_process";

import { DROPPED_CAPS, scenarioResult } from "./helpers/netns.js";

interface Result {
  capEff: string;
  ready: { mode?: string };
  fallbacks: { level: number; role: string; mode: string; reason: string }[];
  status: { mode: string; bpfOffReason?: string; sockets: number; apps: { name: string; ports: number }[] };
  listening: string[];
  tags: string[];
  ctl: { code: number | null; stdout: string };
  strict: { code: number | null; stderr: string; logEvents: string[]; ms: number; leftListening: string[] };
}

const WHY = /^bpf_object__load: EPERM \(needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN\)$/;

let run: Promise<Result> | undefined;
const result = (t: ExecutionContext): Promise<Result> => (run ??= scenarioResult<Result>(t, "bpf-fallback", { dropCaps: true }));

test.before("capsh is installed (Debian package libcap2-bin, `make deps`)", () => {
  execFileSync("capsh", ["--print"], { stdio: "ignore" });
});

test.serial("the scenario ran without the BPF capabilities", async (t) => {
  const r = await result(t);
  const eff = BigInt(`0x${r.capEff}`);
  // CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39: what DROPPED_CAPS names.
  t.is(DROPPED_CAPS, "cap_bpf,cap_sys_admin,cap_net_admin,cap_perfmon");
  for (const bit of [12n, 21n, 38n, 39n]) t.is((eff >> bit) & 1n, 0n, `capability ${bit} still effective`);
});

test.serial("--steering auto falls back to ports mode and says why in one log line", async (t) => {
  const r = await result(t);
  t.is(r.fallbacks.length, 1, JSON.stringify(r.fallbacks));
  t.like(r.fallbacks[0], { role: "supervisor", mode: "ports", level: 40 });
  t.regex(r.fallbacks[0]?.reason ?? "", WHY);
  t.is(r.ready.mode, "ports");
});

test.serial("/status and ctl status show ports mode and the reason", async (t) => {
  const r = await result(t);
  t.like(r.status, { mode: "ports", bpfOffReason: r.fallbacks[0]?.reason, sockets: 10, apps: [{ name: "a", ports: 5 }] });
  t.is(r.ctl.code, 0);
  t.true(r.ctl.stdout.includes(`steering: ports, 10 sockets (BPF off: ${r.fallbacks[0]?.reason})`), r.ctl.stdout);
});

test.serial("traffic flows through one socket per address and port", async (t) => {
  const r = await result(t);
  // 5 ports × (0.0.0.0, ::).
  t.is(r.listening.length, 10, r.listening.join(" "));
  for (const p of [5001, 5002, 5003, 5004, 5005]) {
    t.true(r.listening.includes(`0.0.0.0:${p}`), `0.0.0.0:${p}`);
    t.true(r.listening.includes(`[::]:${p}`), `[::]:${p}`);
  }
  t.deepEqual(r.tags, new Array<string>(10).fill("a"));
});

test.serial("--steering bpf exits non-zero and names the missing permission", async (t) => {
  const r = await result(t);
  t.log(`--steering bpf exited ${r.strict.code} after ${r.strict.ms} ms: ${r.strict.stderr.trim()}`);
  t.is(r.strict.code, 1);
  t.regex(r.strict.stderr, /^switchyard: --steering bpf: BPF steering unavailable: bpf_object__load: EPERM \(needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN\)\n$/);
  t.false(r.strict.logEvents.includes("supervisor_ready"));
  t.false(r.strict.logEvents.includes("steering_fallback"));
  t.deepEqual(r.strict.leftListening, []);
});
