// Every fuzz target, in `make test`: each stored failure under
// fuzz/regressions/<target>/ is replayed (it must pass now), and the target
// explores briefly, so a change that breaks the property is caught without
// `make fuzz`. Targets run one after another: some start a supervisor.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { targets } from "../fuzz/targets/index.js";
import { repoRoot } from "./helpers/supervisor.js";

/** Exploration per target: long enough for a few hundred config inputs, short for the suite. */
const EXPLORE_MS = 1500;

function storedCases(target: string): { file: string; input: unknown }[] {
  const dir = path.join(repoRoot, "fuzz/regressions", target);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => ({ file: f, input: (JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as { input: unknown }).input }));
}

test("the registry names each target once", (t) => {
  const names = targets.map((x) => x.name);
  t.deepEqual([...new Set(names)], names);
  t.true(names.includes("config"));
});

for (const target of targets) {
  test.serial(`${target.name}: every stored regression passes`, async (t) => {
    const cases = storedCases(target.name);
    for (const { file, input } of cases) {
      await t.notThrowsAsync(() => target.replay(input), file);
    }
    t.pass(`${cases.length} cases`);
  });

  test.serial(`${target.name}: a brief exploration finds nothing`, async (t) => {
    const report = await target.run({ timeLimitMs: EXPLORE_MS });
    t.true(report.runs > 0, "no input was tried");
    t.deepEqual(report.failures, []);
  });
}

test("config: a stored case that fails is reported with its reason", async (t) => {
  const config = targets.find((x) => x.name === "config")!;
  // A ConfigError is the right answer for junk, so only a wrong shape of input can fail replay.
  await t.throwsAsync(() => config.replay({ text: "not bytes" }), { message: /not a config input/ });
});
