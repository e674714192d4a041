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
  duplicates: DuplicateKey[];
}

class Invalid {
  constructor(readonly at: number) {}
}

export function scanJson(text: string): ScanResult {
  const duplicates: DuplicateKey[] = [];
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
  const value = (path: JsonPath): void => {
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
        if (first !== undefined) duplicates.push({ path: [...path, key], first: locate(text, first) });
        else seen.set(key, keyAt);
        ws();
        expect(":");
        value([...path, key]);
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
        value([...path, n]);
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
    value([]);
    ws();
    if (i < text.length) fail();
    return { duplicates };
  } catch (e) {
    if (e instanceof Invalid) return { errorAt: e.at, duplicates };
    // Nesting deep enough to exhaust the stack: JSON.parse coped, and the schema
    // will reject such a document anyway, so skip the duplicate check.
    if (e instanceof RangeError) return { duplicates };
    throw e;
  }
}
