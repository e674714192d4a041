// `node dist/fuzz/main.js [--time SECONDS] [--seed N] [TARGET...]` (`make fuzz`):
// runs each target (all by default) for the time given, stores every failure as
// fuzz/regressions/<target>/<sha256 prefix>.json for `make test` to replay, prints
// one summary line per target and exits 1 if any failed.
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { FuzzFailure } from "./target.js";
import { targets } from "./targets/index.js";

// Compiled to dist/fuzz/; the regressions live in the source tree.
const regressionsDir = fileURLToPath(new URL("../../fuzz/regressions/", import.meta.url));

/** Stores a failure under its content's hash, so finding it again rewrites the same file. */
function store(target: string, failure: FuzzFailure): string {
  const text = JSON.stringify({ input: failure.input, reason: failure.reason }, null, 2) + "\n";
  const name = createHash("sha256").update(JSON.stringify(failure.input)).digest("hex").slice(0, 16);
  const dir = join(regressionsDir, target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, text);
  return file;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { time: { type: "string", default: "60" }, seed: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const seconds = Number(values.time);
  if (!(seconds > 0)) throw new Error(`--time must be a positive number of seconds, not ${JSON.stringify(values.time)}`);
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  const unknown = positionals.filter((name) => !targets.some((t) => t.name === name));
  if (unknown.length > 0) throw new Error(`unknown target ${unknown.join(", ")}; known: ${targets.map((t) => t.name).join(", ")}`);
  const chosen = positionals.length === 0 ? targets : targets.filter((t) => positionals.includes(t.name));
  let failed = false;
  for (const target of chosen) {
    const report = await target.run({ timeLimitMs: seconds * 1000, ...(seed === undefined ? {} : { seed }) });
    const files = report.failures.map((f) => store(target.name, f));
    for (const [i, f] of report.failures.entries()) process.stderr.write(`${target.name}: ${files[i]}: ${f.reason}\n`);
    process.stdout.write(`${target.name}: ${report.runs} runs, ${report.failures.length} failures, ${files.length} stored\n`);
    if (report.failures.length > 0) failed = true;
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    // Targets that start processes may leave handles; the summary is written by now.
    process.exitCode = code;
    process.stdout.write("", () => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`fuzz: ${(err as Error).message}\n`);
    process.exit(2);
  },
);
