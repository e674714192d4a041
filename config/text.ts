// From the bytes of a config file to a JSON value, with a document-level problem
// (path "") for each way that can fail before the schema has anything to look at.

import { ConfigError, MAX_REPORTED_PROBLEMS, type ConfigProblem } from "../common/errors.js";
import { formatPath } from "./issues.js";
import { describeJsonError, scanJson } from "./json-syntax.js";

/** Larger files are refused: a config this big is a mistake, and reading it blocks the supervisor. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

function documentError(message: string, source: string | undefined, cause?: unknown): ConfigError {
  const prefix = source === undefined ? "" : `${source}: `;
  return new ConfigError([{ path: "", message: prefix + message }], { cause });
}

export function tooLarge(size: number, source?: string): ConfigError {
  return documentError(`file is too large (${size} bytes; the limit is ${MAX_CONFIG_BYTES})`, source);
}

/** Offset of the first byte that breaks UTF-8, for the error message only. */
function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    const extra = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (extra === 0 || i + extra >= b.length) return i;
    let cp = c & (0x3f >> extra);
    for (let k = 1; k <= extra; k++) {
      const cc = b[i + k]!;
      if ((cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    const min = [0, 0x80, 0x800, 0x10000][extra]!;
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += extra + 1;
  }
  return -1;
}

export function decodeConfigBytes(bytes: Uint8Array, source?: string): string {
  if (bytes.length > MAX_CONFIG_BYTES) throw tooLarge(bytes.length, source);
  try {
    // fatal: a stray Latin-1 byte must not turn silently into U+FFFD inside a name.
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    const at = firstInvalidUtf8(bytes);
    const where = at < 0 ? "" : ` (line ${bytes.subarray(0, at).filter((x) => x === 0x0a).length + 1}, byte offset ${at})`;
    throw documentError(`file is not valid UTF-8${where}`, source, cause);
  }
}

export interface ParsedJson {
  value: unknown;
  /** Reported with the schema's problems, so a file with both shows all of them (the first few). */
  duplicateKeys: ConfigProblem[];
  /** Duplicate keys beyond those listed. */
  duplicateKeysOmitted: number;
}

export function parseJsonText(text: string, source?: string): ParsedJson {
  // TextDecoder drops a BOM; a string handed in directly may still carry one.
  const body = text.startsWith("\uFEFF") ? text.slice(1) : text;
  if (body.length === 0) throw documentError('file is empty; expected a JSON object with an "Apps" array', source);
  if (body.trim() === "") throw documentError('file holds only white space; expected a JSON object with an "Apps" array', source);
  if (Buffer.byteLength(body) > MAX_CONFIG_BYTES) throw tooLarge(Buffer.byteLength(body), source);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (cause) {
    const d = describeJsonError(body, cause instanceof Error ? cause.message : String(cause));
    const where = "line" in d ? ` at line ${d.line}, column ${d.column}` : "";
    throw documentError(`invalid JSON${where}: ${d.reason}`, source, cause);
  }
  const scan = scanJson(body, MAX_REPORTED_PROBLEMS);
  const duplicateKeys = scan.duplicates.map((d) => ({
    path: formatPath(d.path),
    message: `duplicate key (first at line ${d.first.line}, column ${d.first.column}); JSON would keep only the last one`,
  }));
  return { value, duplicateKeys, duplicateKeysOmitted: scan.duplicateCount - duplicateKeys.length };
}
