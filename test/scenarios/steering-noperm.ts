// Scenario, run by test/steering-native.test.ts inside `unshare -n` under
// `capsh --drop=cap_bpf,cap_sys_admin,cap_net_admin,cap_perfmon`: without those
// capabilities bpfAvailable() must say no, and why. Prints one JSON object.
import { readFileSync } from "node:fs";

import { bpfAvailable, loadSteering } from "../../native/steering.js";
import { deadline, emit, errorOf, openFds, requireIsolatedNetns } from "./steering-lib.js";

requireIsolatedNetns();
deadline(30_000);

/** CapEff of this process, as the hex string in /proc/self/status. */
const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "";

const fdsBefore = openFds();
const availability = bpfAvailable();
const load = errorOf(() => loadSteering());
const fdsAfter = openFds();

emit({ capEff, availability, load, fds: { before: fdsBefore, after: fdsAfter } });
