// Whether a bundle (one esbuild file, `make build`) is current, or older than
// the modules it was made from (a `tsc` run after the last `make build`).
import fs from "node:fs";
import path from "node:path";

/** Every compiled file under `dir`, newest modification time (ms); 0 when there is none. */
function newestJs(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".js")) continue;
    newest = Math.max(newest, fs.statSync(path.join(entry.parentPath ?? (entry as { path: string }).path, entry.name)).mtimeMs);
  }
  return newest;
}

/**
 * `bundle` when it exists and no compiled file under `sourceDirs` is newer,
 * else `modules`. The bundle lies under one of `sourceDirs`: it is the newest
 * file there when it is current.
 */
export function bundleIfCurrent(bundle: string, modules: string, sourceDirs: string[]): string {
  try {
    const bundled = fs.statSync(bundle).mtimeMs;
    const sources = Math.max(...sourceDirs.map(newestJs).filter((t) => t !== 0), 0);
    return bundled >= sources ? bundle : modules;
  } catch {
    return modules;
  }
}
