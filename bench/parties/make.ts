// The parties of a run, by name, in the order every round visits them.
import { Direct } from "./direct.js";
import { HAProxy } from "./haproxy.js";
import { Switchyard } from "./switchyard.js";
import type { Party, PartySpec } from "./party.js";

export const ALL_PARTIES = ["direct", "haproxy", "switchyard-ports", "switchyard-bpf"] as const;
export type PartyName = (typeof ALL_PARTIES)[number];
/** Parties that reload: the direct party has nothing to reload. */
export const PROXIES: readonly PartyName[] = ["haproxy", "switchyard-ports", "switchyard-bpf"];

export function makeParty(name: PartyName, spec: PartySpec): Party & { cleanup?(): void } {
  switch (name) {
    case "direct":
      return new Direct();
    case "haproxy":
      return new HAProxy(spec);
    case "switchyard-ports":
      return new Switchyard("ports", spec);
    case "switchyard-bpf":
      return new Switchyard("bpf", spec);
  }
}
