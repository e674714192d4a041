// ServerNames: the TLS server names (SNI) an app answers for on a port it shares.
// "api.example.com" matches that name; "*.example.com" any name that ends in
// ".example.com" (as nginx's server_name wildcards do, at any depth).
import { fail, ok, type Parsed } from "./parsed.js";

export const SERVER_NAME_HINT = 'must be a DNS name such as "api.example.com" or a wildcard such as "*.example.com"';
/** Names per app: a tenant's list, not a zone file. */
export const MAX_SERVER_NAMES = 1024;

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** The name lowercased, a trailing dot dropped; a wildcard keeps its "*." */
export function parseServerName(text: string): Parsed<string> {
  const name = text.toLowerCase().replace(/\.$/, "");
  const bare = name.startsWith("*.") ? name.slice(2) : name;
  if (name.length === 0 || name.length > 253) return fail(SERVER_NAME_HINT);
  const labels = bare.split(".");
  if (labels.some((l) => !LABEL.test(l))) return fail(`${SERVER_NAME_HINT}, not ${JSON.stringify(text.slice(0, 80))}`);
  if (name.startsWith("*.") && labels.length < 2) return fail(`a wildcard needs a domain under it ("*.example.com"), not ${JSON.stringify(text.slice(0, 80))}`);
  return ok(name);
}
