// Configs built to make validation slow or hungry, each as close to the 1 MiB
// file limit as its shape allows. test/config-limits.test.ts checks them with
// generous bounds; `node dist/test/config-adversarial.js DIR` writes them out
// to time `switchyard check` by hand.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const LIMIT = 1024 * 1024;

type App = Record<string, unknown>;
const doc = (apps: App[]): string => JSON.stringify({ Apps: apps });
const app = (i: number, extra: App): App => ({ Name: `a${i}`, Targets: ["127.0.0.1:1"], ...extra });

/** As many items as fit within the file limit: a binary search on the count, a few dozen renders. */
function fill<T>(make: (i: number) => T, render: (items: T[]) => string): string {
  const fits = (n: number): boolean => render(Array.from({ length: n }, (_, i) => make(i))).length <= LIMIT;
  let low = 0;
  let high = 1;
  while (fits(high)) [low, high] = [high, high * 2];
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (fits(mid)) low = mid;
    else high = mid;
  }
  return render(Array.from({ length: low }, (_, i) => make(i)));
}

export const adversarial: Record<string, { text: () => string; valid: boolean }> = {
  // The case: one app, every entry the whole port space.
  "one app, 10,000 overlapping full ranges": {
    valid: true,
    text: () => doc([app(0, { Ports: Array.from({ length: 10_000 }, () => "1-65535") })]),
  },
  // Every app shares the same 64 ports, each on its own address: no conflicts, many owners per port.
  "4096 apps, distinct Addresses, same 64 ports": {
    valid: true,
    text: () =>
      doc(Array.from({ length: 4096 }, (_, i) => app(i, { Ports: ["5000-5063"], Addresses: [`10.${i >> 8}.${i & 255}.1`] }))),
  },
  // Single ports spelled out one by one, spread over the apps.
  "4096 apps, 24 single ports each": {
    valid: true,
    text: () => doc(Array.from({ length: 4096 }, (_, i) => app(i, { Ports: Array.from({ length: 24 }, (_, k) => 1 + ((i * 16 + k * 3) % 65535)), Addresses: [`10.${i >> 8}.${i & 255}.1`] }))),
  },
  // As many single ports as the file holds, in one app (about 170,000 entries).
  "one app, every port listed singly, repeated": {
    valid: true,
    text: () => fill((i) => (i % 65535) + 1, (ports) => doc([app(0, { Ports: ports })])),
  },
  // Too many apps, each claiming everything: refused by the limits, before any walk.
  "18,000 apps all on 1-65535": {
    valid: false,
    text: () => doc(Array.from({ length: 18_000 }, (_, i) => ({ Name: `a${i}`, Ports: ["1-65535"], Targets: ["h:1"] }))),
  },
  // Within the app limit but every app clashes with every other.
  "4096 apps all on the same 16 ports": {
    valid: false,
    text: () => doc(Array.from({ length: 4096 }, (_, i) => app(i, { Ports: ["5000-5015"] }))),
  },
  // A file full of bad ports: one problem each.
  "100,000+ bad ports": {
    valid: false,
    text: () => fill(() => 0, (ports) => doc([app(0, { Ports: ports })])),
  },
  // Apps with no keys at all: three problems each.
  "a file of empty apps": {
    valid: false,
    text: () => fill(() => ({}), (apps) => doc(apps as App[])),
  },
  // A duplicate key in every one of many small objects, far into the file.
  "duplicate keys everywhere": {
    valid: false,
    text: () => fill(() => '{"x":1,"x":1}', (objs) => `{"Apps":[],"Pad":[${objs.join(",")}]}`),
  },
  // Many apps, each overlapping its neighbour's addresses on a shared port.
  "4096 apps, nested prefixes on one port": {
    valid: false,
    text: () => doc(Array.from({ length: 4096 }, (_, i) => app(i, { Ports: [5000], Addresses: [`fd00::${i.toString(16)}/${64 + (i % 64)}`] }))),
  },
};

// As a script: writes every config into DIR (for timing `switchyard check`).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] ?? ".";
  for (const [name, c] of Object.entries(adversarial)) {
    const file = join(dir, `${name.replace(/[^a-z0-9]+/gi, "-")}.json`);
    writeFileSync(file, c.text());
    process.stdout.write(`${file}\n`);
  }
}
