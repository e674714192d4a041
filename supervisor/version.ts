import fs from "node:fs";

/** package.json's version, read once: what `ctl status` reports and an upgrade changes. */
export const SWITCHYARD_VERSION: string = (() => {
  try {
    return (JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
})();
