// JSON.parse says *what* is wrong but not always *where*: Node 20 gives "at position N"
// for some errors and nothing for "Unexpected token" ones; Node 22+ adds "(line L column C)".
// This module turns either into a line and column, and falls back to its own scanner
// when V8 gives no position. The same scanner finds duplicate keys, which JSON.parse
// silently resolves to the last one: a repeated "Ports" would drop ports unnoticed.

export type JsonPath = (string | number)[];

export interface JsonLocation {
  line: number;
  column: number;
}

export interface JsonSyntaxError extends JsonLocation {
  /** V8's description without its position and without the echo of the input. */
  reason: string;
}

export interface DuplicateKey {
  path: JsonPath;
  first: JsonLocation;
}

/** 1-based line and column of a UTF-16 offset into text. */
export function locate(text: string, offset: number): JsonLocation {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  return { line: before.split("\n").length, column: before.length - before.lastIndexOf("\n") };
}

export function describeJsonError(text: string, message: string): JsonSyntaxError | { reason: string } {
  const lineCol = /\(line (\d+) column (\d+)\)/.exec(message);
  const position = /at position (\d+)/.exec(message);
  const reason = message
    .replace(/,\s*".*" is not valid JSON$/s, "")
    .replace(/\s*in JSON at position \d+/, "")
    .replace(/\s*\(line \d+ column \d+\)/, "")
    .replace(/\s+/g, " ")
    .trim();
  if (lineCol !== null) return { reason, line: Number(lineCol[1]), column: Number(lineCol[2]) };
  if (position !== null) return { reason, ...locate(text, Number(position[1])) };
  if (/end of JSON input/.test(message)) return { reason, ...locate(text, text.length) };
  const found = scanJson(text).errorAt;
  return found === undefined ? { reason } : { reason, ...locate(text, found) };
}

export interface ScanResult {
  /** Offset of the first character that makes the text invalid JSON, if any. */
  errorAt?: number;
  /** The first `maxDuplicates` duplicate keys. */
  duplicates: DuplicateKey[];
  /** All of them: a file can repeat a key in every one of 70,000 objects. */
  duplicateCount: number;
}

/** Line and column of many offsets of one text, each in O(log lines), not O(offset). */
function locator(text: string): (offset: number) => JsonLocation {
  let starts: number[] | undefined;
  return (offset) => {
    if (starts === undefined) {
      starts = [0];
      for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
    }
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - starts[lo]! + 1 };
  };
}

class Invalid {
  constructor(readonly at: number) {}
}

export function scanJson(text: string, maxDuplicates = Infinity): ScanResult {
  const duplicates: DuplicateKey[] = [];
  let duplicateCount = 0;
  const at = locator(text);
  // One path, pushed and popped as the scan goes down and up: copying it at every
  // value would cost the depth squared in a deeply nested file.
  const path: JsonPath = [];
  let i = 0;
  const fail = (): never => {
    throw new Invalid(i);
  };
  const ws = (): void => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const expect = (c: string): void => {
    if (text[i] !== c) fail();
    i++;
  };
  const digits = (): void => {
    if (!/[0-9]/.test(text[i] ?? "")) fail();
    while (/[0-9]/.test(text[i] ?? "")) i++;
  };
  const string = (): string => {
    const start = i;
    expect('"');
    for (;;) {
      const c = text[i];
      if (c === undefined || c < " ") fail();
      if (c === '"') break;
      if (c === "\\") {
        i++;
        if (text[i] === "u") {
          for (let k = 0; k < 4; k++) {
            i++;
            if (!/[0-9a-fA-F]/.test(text[i] ?? "")) fail();
          }
        } else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) fail();
      }
      i++;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const seen = new Map<string, number>();
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        const keyAt = i;
        const key = string();
        const first = seen.get(key);
        if (first === undefined) seen.set(key, keyAt);
        else if (duplicateCount++ < maxDuplicates) duplicates.push({ path: [...path, key], first: at(first) });
        ws();
        expect(":");
        path.push(key);
        value();
        path.pop();
        ws();
        if (text[i] === ",") i++;
        else return expect("}");
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (let n = 0; ; n++) {
        path.push(n);
        value();
        path.pop();
        ws();
        if (text[i] === ",") i++;
        else return expect("]");
      }
    }
    if (c === '"') return void string();
    for (const word of ["true", "false", "null"]) {
      if (c === word[0]) {
        for (const ch of word) expect(ch);
        return;
      }
    }
    if (text[i] === "-") i++;
    if (text[i] === "0") i++;
    else digits();
    if (text[i] === ".") {
      i++;
      digits();
    }
    if (text[i] === "e" || text[i] === "E") {
      i++;
      if (text[i] === "+" || text[i] === "-") i++;
      digits();
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
    return { duplicates, duplicateCount };
  } catch (e) {
    if (e instanceof Invalid) return { errorAt: e.at, duplicates, duplicateCount };
    // Nesting deep enough to exhaust the stack: JSON.parse coped, and the schema
    // will reject such a document anyway, so skip the duplicate check.
    if (e instanceof RangeError) return { duplicates, duplicateCount };
    throw e;
  }
}
