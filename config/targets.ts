// A target is "host:port": a DNS name, an IPv4 address, or an IPv6 address in
// brackets, optionally followed by options after white space: "10.0.0.1:80 weight=3"
// (HAProxy's word, so a plain "host:port" stays valid). Workers resolve names at
// connect time; here we only check the form.

import { isIPv6 } from "node:net";
import type { Target } from "./plan.js";
import { parseIPv4 } from "./addresses.js";
import { fail, ok, type Parsed } from "./parsed.js";
import { isPort } from "./ports.js";

export const MIN_WEIGHT = 1;
/** HAProxy's ceiling; 0 (drain) is not offered: a target leaves by leaving the list. */
export const MAX_WEIGHT = 256;
export const DEFAULT_WEIGHT = 1;

export const TARGET_HINT = `must be a "host:port" string, optionally followed by " weight=N" (N ${MIN_WEIGHT}-${MAX_WEIGHT})`;

// RFC 1123 labels (letters, digits, inner hyphens), plus underscores: not legal
// in host names, but resolvers look them up, and container service names
// (Docker Compose's `my_db`) have them.
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function checkHostname(host: string): string | undefined {
  // A single trailing dot marks a fully qualified name and is legal DNS.
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length > 253) return "host name is longer than 253 characters";
  // "10.0.0.300" would pass the label rule yet is surely a mistyped address.
  if (/^[\d.]+$/.test(name)) return "host is not a valid IPv4 address";
  for (const label of name.split(".")) {
    if (!LABEL.test(label)) {
      return label === ""
        ? "host name has an empty label (two dots in a row, or a leading dot)"
        : `host name label ${JSON.stringify(label)} may only hold letters, digits, underscores and inner hyphens`;
    }
  }
  return undefined;
}

function parseAddress(label: string): Parsed<{ host: string; port: number }> {
  let host: string;
  let portText: string;
  if (label.startsWith("[")) {
    const close = label.indexOf("]");
    if (close < 0) return fail(`missing "]" after the IPv6 address`);
    host = label.slice(1, close);
    const rest = label.slice(close + 1);
    if (!rest.startsWith(":")) return fail(`missing ":port" after "]"`);
    portText = rest.slice(1);
    if (!isIPv6(host)) {
      return fail(parseIPv4(host) !== undefined
        ? `brackets are only for IPv6 addresses; write ${host}:${portText}`
        : `${JSON.stringify(host)} is not an IPv6 address`);
    }
  } else {
    const colon = label.lastIndexOf(":");
    if (colon < 0) return fail(`missing port; write "host:port"`);
    host = label.slice(0, colon);
    portText = label.slice(colon + 1);
    if (host.includes(":")) return fail(`IPv6 addresses must be in brackets, e.g. "[::1]:80"`);
    if (host === "") return fail("host is empty");
    if (parseIPv4(host) === undefined) {
      const problem = checkHostname(host);
      if (problem !== undefined) return fail(problem);
    }
  }
  if (portText === "") return fail("port is empty");
  if (!/^\d{1,5}$/.test(portText) || !isPort(Number(portText))) return fail("port must be 1-65535");
  return ok({ host, port: Number(portText) });
}

/** The options after the address; only `weight=N` exists, and it may be given once. */
function parseOptions(words: readonly string[]): Parsed<{ weight: number }> {
  let weight: number | undefined;
  for (const word of words) {
    const eq = word.indexOf("=");
    const key = eq < 0 ? word : word.slice(0, eq);
    if (key !== "weight") return fail(`unknown option ${JSON.stringify(word)}; the only option is weight=N (N ${MIN_WEIGHT}-${MAX_WEIGHT})`);
    if (weight !== undefined) return fail("weight is given twice");
    const value = eq < 0 ? "" : word.slice(eq + 1);
    if (value === "") return fail(`weight needs a value, e.g. weight=3`);
    // Digits only: "3.5", "+3", "0x10" and "1e2" would all pass Number().
    const n = /^\d{1,3}$/.test(value) ? Number(value) : NaN;
    if (!(n >= MIN_WEIGHT && n <= MAX_WEIGHT)) return fail(`weight must be an integer ${MIN_WEIGHT}-${MAX_WEIGHT}, not ${JSON.stringify(value)}`);
    weight = n;
  }
  return ok({ weight: weight ?? DEFAULT_WEIGHT });
}

/**
 * `label` keeps the address as written, without the options: it names the target in
 * /status, metrics and logs, where a weight would only make the name change with it.
 */
export function parseTarget(text: string): Parsed<Target> {
  const quoted = JSON.stringify(text);
  if (text !== text.trim()) return fail(`target ${quoted}: leading or trailing white space`);
  const [label = "", ...options] = text.split(/[ \t]+/);
  const address = parseAddress(label);
  if (!address.ok) return fail(`target ${quoted}: ${address.error}`);
  const opts = parseOptions(options);
  if (!opts.ok) return fail(`target ${quoted}: ${opts.error}`);
  return ok({ label, ...address.value, weight: opts.value.weight });
}
