// Which file `switchyard run` loads: the supervisor as one bundle (`make
// build`: dist/supervisor/bundle.js), or its modules when there is no bundle
// or it is older than any of them (a `tsc` run after the last `make build`).
// One file instead of about 80 modules (its own and chokidar's) makes an idle
// supervisor about 2 MiB smaller (RssAnon): every module costs V8 its records,
// its scope and its own compiled top level, for as long as the process lives.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { bundleIfCurrent } from "../common/bundle-choice.js";

const distDir = fileURLToPath(new URL("../", import.meta.url));

/** A file URL, for import(). */
export function supervisorEntry(): string {
  const file = bundleIfCurrent(
    path.join(distDir, "supervisor", "bundle.js"),
    path.join(distDir, "supervisor", "main.js"),
    ["supervisor", "common", "native", "config"].map((d) => path.join(distDir, d)),
  );
  return pathToFileURL(file).href;
}
