// The suite runs two files at a time; a long file that starts last stretches the
// run by its whole length. These took longest (make test on a 2-core machine,
// seconds in brackets) and start first, longest first; every other file follows in
// name order. A file missing here only risks a longer run, never a missed test.
const LONGEST_FIRST = [
  "upgrade", // [70] two scenarios of upgrades under load
  "ops-access-log", // [44]
  "ops-systemd-unit", // [37]
  "ops-access-log-backpressure", // [37]
  "chaos-reload-sigstop", // [32]
  "upgrade-control", // [31]
  "reload-storm", // [28]
  "crash-restart", // [23]
  "core-idle-timeout", // [22]
  "reload-leak", // [20]
  "ops-sdnotify", // [17]
  "ops-signals", // [17]
  "sni-routing", // [17]
  "proxy-protocol-haproxy", // [17]
];

const rank = (file) => {
  const name = file.split("/").pop().replace(/\.test\.js$/, "");
  const i = LONGEST_FIRST.indexOf(name);
  return i < 0 ? LONGEST_FIRST.length : i;
};

export default {
  files: ["dist/test/**/*.test.js"],
  timeout: "120s",
  concurrency: 2,
  workerThreads: false,
  sortTestFiles: (a, b) => rank(a) - rank(b) || a.localeCompare(b),
};
