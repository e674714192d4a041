// A target is "host:port": a DNS name, an IPv4 address, or an IPv6 address in
// brackets. Workers resolve names at connect time; here we only check the form.

import { isIPv6 } from "node:net";
import type { Target } from "./plan.js";
import { parseIPv4 } from "./addresses.js";
import { fail, ok, type Parsed } from "./parsed.js";
import { isPort } from "./ports.js";

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

export function parseTarget(label: string): Parsed<Target> {
  const quoted = JSON.stringify(label);
  let host: string;
  let portText: string;
  if (label.startsWith("[")) {
    const close = label.indexOf("]");
    if (close < 0) return fail(`target ${quoted}: missing "]" after the IPv6 address`);
    host = label.slice(1, close);
    const rest = label.slice(close + 1);
    if (!rest.startsWith(":")) return fail(`target ${quoted}: missing ":port" after "]"`);
    portText = rest.slice(1);
    if (!isIPv6(host)) {
      return fail(parseIPv4(host) !== undefined
        ? `target ${quoted}: brackets are only for IPv6 addresses; write ${host}:${portText}`
        : `target ${quoted}: ${JSON.stringify(host)} is not an IPv6 address`);
    }
  } else {
    const colon = label.lastIndexOf(":");
    if (colon < 0) return fail(`target ${quoted}: missing port; write "host:port"`);
    host = label.slice(0, colon);
    portText = label.slice(colon + 1);
    if (host.includes(":")) {
      return fail(`target ${quoted}: IPv6 addresses must be in brackets, e.g. "[::1]:80"`);
    }
    if (host === "") return fail(`target ${quoted}: host is empty`);
    if (parseIPv4(host) === undefined) {
      const problem = checkHostname(host);
      if (problem !== undefined) return fail(`target ${quoted}: ${problem}`);
    }
  }
  if (portText === "") return fail(`target ${quoted}: port is empty`);
  if (!/^\d{1,5}$/.test(portText) || !isPort(Number(portText))) {
    return fail(`target ${quoted}: port must be 1-65535`);
  }
  return ok({ label, host, port: Number(portText) });
}
