// The schema reports paths as arrays. Operators read `Apps[1].Ports[2]: must be 1-65535`,
// so every issue is turned into that form here.

import type { ProblemCollector } from "./problems.js";
import type { Issue } from "./schema.js";

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** ["Apps", 1, "Ports", 2] → "Apps[1].Ports[2]"; the document itself is "". */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (typeof part === "string" && IDENTIFIER.test(part)) out += out === "" ? part : `.${part}`;
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out;
}

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const near = allowed.find((k) => k.toLowerCase() === key.toLowerCase());
  if (near !== undefined) return `unknown key; did you mean "${near}"? (keys are case-sensitive)`;
  return `unknown key; allowed here: ${allowed.join(", ")}`;
}

/**
 * Adds each issue to `sink` as a problem at its path under `at`.
 * @param allowedKeys the keys the strict object at `path` accepts, to suggest a fix
 *   for an unknown key (most are a wrong case: "ports" for "Ports").
 */
export function addIssues(
  sink: ProblemCollector,
  issues: readonly Issue[],
  allowedKeys: (path: readonly PropertyKey[]) => readonly string[],
  at: readonly PropertyKey[] = [],
): void {
  for (const issue of issues) {
    const path = [...at, ...issue.path];
    if (issue.keys !== undefined) {
      // One problem per key, each at the key's own path, rather than one at the object.
      for (const key of issue.keys) {
        if (sink.full) sink.skip(1);
        else sink.add({ path: formatPath([...path, key]), message: unknownKeyMessage(key, allowedKeys(path)) });
      }
    } else if (issue.omitted !== undefined) {
      sink.skip(issue.omitted);
    } else {
      sink.add({ path: formatPath(path), message: issue.message });
    }
  }
}
