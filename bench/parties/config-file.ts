// Writes a config file the way an operator's deploy tool would: whole, then renamed into place.
import fs from "node:fs";

export function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
