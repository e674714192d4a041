// The worker's DNS cache: one lookup per name shared by concurrent connections,
// background refresh, the last answer kept through a DNS failure; and a real
// connection through it to a target given by name.
import test from "ava";
import net from "node:net";
import type dns from "node:dns";
import { once } from "node:events";
import { DnsCache, type Resolve } from "../worker/dns-cache.js";
import { startTarget } from "./helpers/net.js";

type Answer = { err: NodeJS.ErrnoException | null; addresses: dns.LookupAddress[] };

/** A resolver the test answers by hand; `calls` lists the names asked, in order. */
function manualResolver() {
  const calls: string[] = [];
  const pending: ((a: Answer) => void)[] = [];
  const resolve: Resolve = (host, done) => {
    calls.push(host);
    pending.push((a) => done(a.err, a.addresses));
  };
  const answer = (a: Answer): void => {
    const next = pending.shift();
    if (!next) throw new Error("no lookup is waiting");
    next(a);
  };
  return { calls, pending, resolve, answer };
}

const v4 = (address: string): dns.LookupAddress => ({ address, family: 4 });
const v6 = (address: string): dns.LookupAddress => ({ address, family: 6 });
const failure = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`getaddrinfo ${code} backend.test`), { code });

/** One lookup as net.connect makes it, with `all` as happy eyeballs asks. */
function lookupAll(cache: DnsCache, host: string, family = 0): Promise<{ err: NodeJS.ErrnoException | null; addresses: dns.LookupAddress[] }> {
  return new Promise((resolve) => cache.lookup(host, { all: true, family }, (err, addresses) => resolve({ err, addresses: addresses as dns.LookupAddress[] })));
}

test("concurrent lookups of one name share one resolution, and later ones within the period ask nothing", async (t) => {
  const r = manualResolver();
  const cache = new DnsCache({ resolve: r.resolve, now: () => 0 });
  const first = lookupAll(cache, "backend.test");
  const second = lookupAll(cache, "backend.test");
  t.deepEqual(r.calls, ["backend.test"]);
  r.answer({ err: null, addresses: [v4("10.0.0.1"), v6("fd00::1")] });
  t.deepEqual((await first).addresses, [v4("10.0.0.1"), v6("fd00::1")]);
  t.deepEqual((await second).addresses, [v4("10.0.0.1"), v6("fd00::1")]);
  t.deepEqual((await lookupAll(cache, "backend.test")).addresses.map((a) => a.address), ["10.0.0.1", "fd00::1"]);
  t.deepEqual(r.calls, ["backend.test"]);
});

test("single-address lookups get the first address of the family asked for", async (t) => {
  const r = manualResolver();
  const cache = new DnsCache({ resolve: r.resolve, now: () => 0 });
  const one = (family: number) => new Promise<[string, number | undefined]>((resolve, reject) => cache.lookup("backend.test", { family }, (err, address, fam) => (err ? reject(err) : resolve([address as string, fam]))));
  const any = one(0);
  r.answer({ err: null, addresses: [v6("fd00::1"), v4("10.0.0.1")] });
  t.deepEqual(await any, ["fd00::1", 6]);
  t.deepEqual(await one(4), ["10.0.0.1", 4]);
  const noV6 = new DnsCache({ resolve: (_h, done) => done(null, [v4("10.0.0.1")]) });
  const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => noV6.lookup("backend.test", { family: 6 }, (e) => resolve(e)));
  t.is(err?.code, "ENOTFOUND");
});

test("after the refresh period the old answer is served at once while a new one is fetched; a new answer replaces it", async (t) => {
  const r = manualResolver();
  let now = 0;
  const cache = new DnsCache({ resolve: r.resolve, now: () => now, refreshMs: 5000 });
  const first = lookupAll(cache, "backend.test");
  r.answer({ err: null, addresses: [v4("10.0.0.1")] });
  await first;
  now = 4999;
  await lookupAll(cache, "backend.test");
  t.is(r.calls.length, 1, "refreshed before the period ended");
  now = 5000;
  // Answered from the cache without waiting for the refresh it started.
  t.deepEqual((await lookupAll(cache, "backend.test")).addresses, [v4("10.0.0.1")]);
  t.is(r.calls.length, 2);
  await lookupAll(cache, "backend.test");
  t.is(r.calls.length, 2, "a second refresh started while one runs");
  r.answer({ err: null, addresses: [v4("10.0.0.2")] });
  t.deepEqual((await lookupAll(cache, "backend.test")).addresses, [v4("10.0.0.2")]);
});

test("a failing refresh keeps the last answer, is reported once per failure streak, and is retried a period later", async (t) => {
  const r = manualResolver();
  let now = 0;
  const stale: string[] = [];
  const cache = new DnsCache({ resolve: r.resolve, now: () => now, refreshMs: 1000, onStale: (host, err, addrs) => stale.push(`${host} ${err.code} ${addrs.map((a) => a.address).join(",")}`) });
  const first = lookupAll(cache, "backend.test");
  r.answer({ err: null, addresses: [v4("10.0.0.1")] });
  await first;
  for (const at of [1000, 2000]) {
    now = at;
    t.deepEqual((await lookupAll(cache, "backend.test")).addresses, [v4("10.0.0.1")]);
    r.answer({ err: failure("EAI_AGAIN"), addresses: [] });
    // Within the period after a failure, nothing is asked again.
    t.deepEqual((await lookupAll(cache, "backend.test")).addresses, [v4("10.0.0.1")]);
    t.is(r.pending.length, 0);
  }
  t.deepEqual(stale, ["backend.test EAI_AGAIN 10.0.0.1"]);
  now = 3000;
  await lookupAll(cache, "backend.test");
  r.answer({ err: null, addresses: [v4("10.0.0.3")] });
  now = 4000;
  await lookupAll(cache, "backend.test");
  r.answer({ err: failure("EAI_AGAIN"), addresses: [] });
  t.is(stale.length, 2, "a new failure streak after a success is reported again");
});

test("a name that never resolved fails every waiting connection and is asked again by the next one", async (t) => {
  const r = manualResolver();
  const cache = new DnsCache({ resolve: r.resolve, now: () => 0 });
  const a = lookupAll(cache, "nowhere.test");
  const b = lookupAll(cache, "nowhere.test");
  r.answer({ err: failure("ENOTFOUND"), addresses: [] });
  t.is((await a).err?.code, "ENOTFOUND");
  t.is((await b).err?.code, "ENOTFOUND");
  const c = lookupAll(cache, "nowhere.test");
  t.is(r.calls.length, 2);
  r.answer({ err: null, addresses: [v4("10.0.0.9")] });
  t.deepEqual((await c).addresses, [v4("10.0.0.9")]);
});

test("net.connect through the cache reaches a target given by name, with one system lookup for many connections", async (t) => {
  const target = await startTarget("named");
  t.teardown(() => target.close());
  let lookups = 0;
  const cache = new DnsCache({ resolve: (host, done) => (lookups++, import("node:dns").then((d) => d.lookup(host, { all: true }, done))) });
  for (let i = 0; i < 5; i++) {
    const socket = net.connect({ host: "localhost", port: target.port, lookup: cache.lookup });
    await once(socket, "connect");
    t.true(["127.0.0.1", "::1"].includes(socket.remoteAddress!), String(socket.remoteAddress));
    socket.destroy();
  }
  t.is(lookups, 1);
});

test("after a quiet spell longer than maxStaleMs the next connection waits for a fresh answer, or gets the old one if DNS fails", async (t) => {
  const r = manualResolver();
  let now = 0;
  const cache = new DnsCache({ resolve: r.resolve, now: () => now, refreshMs: 1000, maxStaleMs: 5000 });
  const first = lookupAll(cache, "backend.test");
  r.answer({ err: null, addresses: [v4("10.0.0.1")] });
  await first;
  now = 5000;
  let settled = false;
  const moved = lookupAll(cache, "backend.test").finally(() => (settled = true));
  await Promise.resolve();
  t.false(settled, "a stale answer was used without asking");
  t.is(r.calls.length, 2);
  r.answer({ err: null, addresses: [v4("10.0.0.2")] });
  t.deepEqual((await moved).addresses, [v4("10.0.0.2")]);
  now = 10_000;
  const outage = lookupAll(cache, "backend.test");
  r.answer({ err: failure("EAI_AGAIN"), addresses: [] });
  t.deepEqual((await outage).addresses, [v4("10.0.0.2")]);
});

test("a stale answer waits for a slow resolver only staleWaitMs, then is used; the late answer replaces it for later connections", async (t) => {
  const r = manualResolver();
  let now = 0;
  const cache = new DnsCache({ resolve: r.resolve, now: () => now, refreshMs: 1000, maxStaleMs: 5000, staleWaitMs: 20 });
  const first = lookupAll(cache, "backend.test");
  r.answer({ err: null, addresses: [v4("10.0.0.1")] });
  await first;
  now = 60_000;
  let calls = 0;
  const waited = await new Promise<dns.LookupAddress[]>((resolve) =>
    cache.lookup("backend.test", { all: true }, (_err, addresses) => {
      calls++;
      resolve(addresses as dns.LookupAddress[]);
    }),
  );
  t.deepEqual(waited, [v4("10.0.0.1")]);
  t.is(r.pending.length, 1, "the lookup still runs");
  r.answer({ err: null, addresses: [v4("10.0.0.2")] });
  t.is(calls, 1, "answered twice");
  t.deepEqual((await lookupAll(cache, "backend.test")).addresses, [v4("10.0.0.2")]);
});
