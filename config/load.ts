// The one way in for the supervisor and `switchyard check`: a path or the file's
// contents, out comes a Plan or a ConfigError whose problems each carry a path.

import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { ConfigError } from "../common/errors.js";
import { planFromValue } from "./build.js";
import type { Plan } from "./plan.js";
import { decodeConfigBytes, MAX_CONFIG_BYTES, parseJsonText, tooLarge } from "./text.js";

export { planFromConfig } from "./build.js";
export type { ConfigFile } from "./schema.js";
export { MAX_CONFIG_BYTES } from "./text.js";

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EISDIR: "is a directory",
  ENOTDIR: "a parent of it is not a directory",
  ELOOP: "too many symbolic links",
};

function unreadable(path: string, detail: string, cause?: unknown): ConfigError {
  return new ConfigError([{ path: "", message: `cannot read config file ${JSON.stringify(path)}: ${detail}` }], {
    code: "CONFIG_UNREADABLE",
    cause,
  });
}

async function readCapped(path: string): Promise<Buffer> {
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer,
    // hanging the reload (and, in libuv's thread pool, the exit). No effect on files.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw unreadable(path, `${code} (${ERRNO_TEXT[code] ?? (e as Error).message})`, e);
  }
  try {
    // stat the open handle, not the path: a rename between the two cannot fool it.
    const stat = await handle.stat();
    if (!stat.isFile()) throw unreadable(path, "not a regular file");
    if (stat.size > MAX_CONFIG_BYTES) throw tooLarge(stat.size, path);
    // Up to one byte past the limit, so a file that grew since stat is still caught. The
    // buffer starts at the size stat saw (plus that byte) and grows only if the file did:
    // one of the limit's size per load left a MiB of the supervisor's malloc heap behind
    // each reload (glibc keeps a freed block that size for the next one).
    let buf = Buffer.alloc(stat.size + 1);
    let length = 0;
    for (;;) {
      if (length === buf.length) {
        if (buf.length > MAX_CONFIG_BYTES) break;
        const bigger = Buffer.alloc(Math.min(buf.length * 2, MAX_CONFIG_BYTES + 1));
        buf.copy(bigger, 0, 0, length);
        buf = bigger;
      }
      const { bytesRead } = await handle.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buf.subarray(0, length);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw unreadable(path, `${code} (${ERRNO_TEXT[code] ?? (e as Error).message})`, e);
  } finally {
    await handle.close();
  }
}

/** Reads, validates and normalises a config file. Throws ConfigError. */
export async function loadConfigFile(path: string): Promise<Plan> {
  return parseConfigText(await readCapped(path), path);
}

/**
 * Validates config text. A Buffer is checked for size and UTF-8 first.
 * `source` (usually the file path) prefixes problems about the document as a whole.
 */
export function parseConfigText(text: string | Buffer, source?: string): Plan {
  const decoded = typeof text === "string" ? text : decodeConfigBytes(text, source);
  const { value, duplicateKeys, duplicateKeysOmitted } = parseJsonText(decoded, source);
  return planFromValue(value, { problems: duplicateKeys, omitted: duplicateKeysOmitted });
}
