import { loadConfigFile } from "../config/load.js";
import { ConfigError, formatProblem } from "../common/errors.js";
import { parseArgs } from "node:util";

/**
 * `switchyard check --config FILE`: one line per problem on stderr, exit 1; or exit 0.
 * A ConfigError lists at most the first MAX_REPORTED_PROBLEMS, then how many more.
 */
export async function check(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: "string", short: "c" } }, strict: true });
  if (!values.config) {
    process.stderr.write("check: --config FILE is required\n");
    return 2;
  }
  try {
    const plan = await loadConfigFile(values.config);
    const ports = plan.apps.reduce((n, a) => n + a.ports.length, 0);
    process.stdout.write(`${values.config}: ok (${plan.apps.length} apps, ${ports} ports)\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // One write: a 1 MiB file of problems must not become thousands of pipe writes.
    process.stderr.write(err.problems.map((p) => formatProblem(p) + "\n").join(""));
    return 1;
  }
}
