import dns from "node:dns";
import type { LookupFunction } from "node:net";

type Answer = (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void;

export type Resolve = (host: string, done: Answer) => void;

// ADDRCONFIG, as net.connect's own lookup asks: no IPv6 answers on a host without IPv6.
const systemResolve: Resolve = (host, done) => dns.lookup(host, { all: true, hints: dns.ADDRCONFIG }, done);

/** How long resolved addresses are used before they are looked up again, in the background. */
export const DNS_REFRESH_MS = 5000;
/** Older than this (after a quiet spell), an answer is not trusted without asking first... */
export const DNS_MAX_STALE_MS = 30_000;
/** ...for this long at most: a resolver that is slow to fail must not cost the connection its target. */
export const DNS_STALE_WAIT_MS = 1000;

interface Entry {
  addresses: dns.LookupAddress[] | undefined;
  resolvedAt: number;
  /** Callers waiting for the lookup's answer; undefined when no lookup runs. */
  waiting: Answer[] | undefined;
  /** A refresh has failed since the last success: failures are reported once per streak. */
  failing: boolean;
}

export interface DnsCacheOptions {
  resolve?: Resolve;
  now?: () => number;
  refreshMs?: number;
  maxStaleMs?: number;
  staleWaitMs?: number;
  /** A refresh failed; the last addresses keep being used. Called once per failure streak. */
  onStale?: (host: string, err: NodeJS.ErrnoException, addresses: readonly dns.LookupAddress[]) => void;
}

/**
 * The `lookup` of a worker's upstream connections to targets given by name.
 * Without it every connection would wait for a getaddrinfo on libuv's four
 * threads, and a DNS outage would fail every connection to a target that is
 * itself fine. Names are looked up once, concurrent connections share the
 * answer, and after DNS_REFRESH_MS the answer is refreshed in the background
 * while connections keep using it. An answer older than DNS_MAX_STALE_MS (no
 * connection asked for a while) is refreshed before it is used. A failed
 * lookup keeps the last answer.
 */
export class DnsCache {
  private readonly entries = new Map<string, Entry>();
  private readonly resolve: Resolve;
  private readonly now: () => number;
  private readonly refreshMs: number;
  private readonly maxStaleMs: number;
  private readonly staleWaitMs: number;
  private readonly onStale: NonNullable<DnsCacheOptions["onStale"]>;

  constructor(opts: DnsCacheOptions = {}) {
    this.resolve = opts.resolve ?? systemResolve;
    this.now = opts.now ?? Date.now;
    this.refreshMs = opts.refreshMs ?? DNS_REFRESH_MS;
    this.maxStaleMs = opts.maxStaleMs ?? DNS_MAX_STALE_MS;
    this.staleWaitMs = opts.staleWaitMs ?? DNS_STALE_WAIT_MS;
    this.onStale = opts.onStale ?? (() => undefined);
  }

  /** For net.connect({ lookup }): answers `all: true` (happy eyeballs) and single-address calls. */
  readonly lookup: LookupFunction = (host, options, callback) => {
    this.addresses(host, (err, all) => {
      const wanted = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all;
      if (!err && wanted.length === 0) err = notFound(host);
      if (err) return options.all ? callback(err, []) : callback(err, "", 0);
      if (options.all) return callback(null, wanted);
      const first = wanted[0]!;
      callback(null, first.address, first.family);
    });
  };

  private addresses(host: string, done: Answer): void {
    let entry = this.entries.get(host);
    const age = entry ? this.now() - entry.resolvedAt : 0;
    if (entry?.addresses && age < this.maxStaleMs) {
      if (age >= this.refreshMs && !entry.waiting) this.refresh(host, entry);
      return done(null, entry.addresses);
    }
    // Never resolved yet, or too old to use unasked: wait for the lookup (which keeps the old answer if it fails).
    if (!entry) {
      entry = { addresses: undefined, resolvedAt: 0, waiting: undefined, failing: false };
      this.entries.set(host, entry);
    }
    const running = entry.waiting !== undefined;
    (entry.waiting ??= []).push(entry.addresses ? this.waitAtMost(done, entry.addresses) : done);
    if (!running) this.refresh(host, entry);
  }

  /** `done`, called once: with the lookup's answer, or with `stale` if the lookup takes longer than staleWaitMs. */
  private waitAtMost(done: Answer, stale: dns.LookupAddress[]): Answer {
    let answered = false;
    const once: Answer = (err, addresses) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      done(err, addresses);
    };
    const timer = setTimeout(() => once(null, stale), this.staleWaitMs);
    return once;
  }

  private refresh(host: string, entry: Entry): void {
    entry.waiting ??= [];
    this.resolve(host, (err, addresses) => {
      const waiting = entry.waiting ?? [];
      entry.waiting = undefined;
      if (!err && addresses.length > 0) {
        entry.addresses = addresses;
        entry.resolvedAt = this.now();
        entry.failing = false;
      } else if (entry.addresses) {
        // Try again after another period rather than on every connection.
        entry.resolvedAt = this.now();
        if (!entry.failing) this.onStale(host, err ?? notFound(host), entry.addresses);
        entry.failing = true;
      } else {
        // Never resolved: nothing to keep, so the next connection asks again.
        this.entries.delete(host);
      }
      const result = entry.addresses;
      for (const w of waiting) result ? w(null, result) : w(err ?? notFound(host), []);
    });
  }
}

function notFound(host: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND", syscall: "getaddrinfo", hostname: host });
}
