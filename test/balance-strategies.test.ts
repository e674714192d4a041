// The balancing strategies in-process: distributions measured over many picks, the
// down-last contract of every strategy, and how many clients source-hash moves when a
// target is added or removed. No processes: the math needs none.
import test from "ava";
import type { AppPlan, Target } from "../config/plan.js";
import { BALANCERS } from "../config/schema.js";
import { balancerFor, OpenConnections, type Balancer } from "../worker/balancers/index.js";

/** mulberry32: a seeded PRNG, so a measured share is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const target = (label: string, weight = 1): Target => {
  const colon = label.lastIndexOf(":");
  return { label, host: label.slice(0, colon), port: Number(label.slice(colon + 1)), weight };
};
const targets = (weights: number[]): Target[] => weights.map((w, i) => target(`10.0.0.${i + 1}:80`, w));

function make(balance: AppPlan["balance"], ts: Target[], open = new OpenConnections(), random = seeded(1)): Balancer {
  const app: AppPlan = { name: "a", index: 0, ports: [1], addresses: [], targets: ts, balance, connectTimeoutMs: 1, idleTimeoutMs: null, healthCheck: null, maxConnections: null, maxConnectionsPerClient: null, proxyProtocol: null, acceptProxyProtocol: false, serverNames: [] };
  return balancerFor(app, { open, random });
}

const allUp = (): boolean => true;

/** Picks `n` times; how often each target came first, as shares of n. */
function shares(b: Balancer, ts: Target[], n: number, isUp: (t: Target) => boolean = allUp): number[] {
  const counts = new Map<Target, number>();
  for (let i = 0; i < n; i++) {
    const first = b.order(isUp)[0]!;
    counts.set(first, (counts.get(first) ?? 0) + 1);
  }
  return ts.map((t) => (counts.get(t) ?? 0) / n);
}

function near(t: { true(v: boolean, m?: string): void }, got: number[], want: number[], tolerance: number): void {
  t.true(got.every((g, i) => Math.abs(g - want[i]!) <= tolerance), `shares ${JSON.stringify(got.map((g) => +g.toFixed(4)))}, want ${JSON.stringify(want)} ± ${tolerance}`);
}

test("every strategy: each target exactly once, the down ones last, and all of them when every target is down", (t) => {
  const random = seeded(7);
  for (const balance of BALANCERS) {
    const ts = targets([1, 2, 1, 3, 1]);
    const open = new OpenConnections();
    const b = make(balance, ts, open, seeded(3));
    for (let round = 0; round < 500; round++) {
      const down = new Set(ts.filter(() => random() < 0.4));
      if (random() < 0.3) open.connected(ts[Math.floor(random() * ts.length)]!);
      const order = b.order((x) => !down.has(x), `192.0.2.${round % 256}`);
      const ok =
        order.length === ts.length &&
        new Set(order).size === ts.length &&
        order.every((x, i) => !down.has(x) || order.slice(i).every((y) => down.has(y)));
      if (!ok) {
        t.fail(`${balance}: order ${order.map((x) => x.label)} with down ${[...down].map((x) => x.label)}`);
        return;
      }
    }
    t.pass(balance);
  }
});

test("round-robin: equal weights rotate in config order; a down target's turns go to the others", (t) => {
  const ts = targets([1, 1, 1, 1]);
  const b = make("round-robin", ts);
  const firsts = Array.from({ length: 8 }, () => ts.indexOf(b.order(allUp)[0]!));
  t.deepEqual(firsts, [0, 1, 2, 3, 0, 1, 2, 3]);
  // The rest of the order follows the ring from the chosen one.
  t.deepEqual(b.order(allUp).map((x) => ts.indexOf(x)), [0, 1, 2, 3]);
  const c = ts[2]!;
  const withCDown = Array.from({ length: 300 }, () => b.order((x) => x !== c));
  t.true(withCDown.every((o) => o[3] === c), "the down target was not last");
  // c's turns are shared out: each of the others serves 100 of 300, give or take the one turn in hand.
  const counts = ts.map((x) => withCDown.filter((o) => o[0] === x).length);
  t.true(counts[2] === 0 && [0, 1, 3].every((i) => Math.abs(counts[i]! - 100) <= 1), JSON.stringify(counts));
});

test("round-robin: weights give exact shares in every cycle of their sum, smoothly", (t) => {
  for (const weights of [[1, 1, 2, 4], [5, 1, 1], [1, 2, 3, 4, 256]]) {
    const ts = targets(weights);
    const total = weights.reduce((x, y) => x + y);
    const b = make("round-robin", ts);
    const seq = Array.from({ length: total * 100 }, () => ts.indexOf(b.order(allUp)[0]!));
    for (let i = 0; i < seq.length; i += total) {
      const cycle = seq.slice(i, i + total);
      const counts = weights.map((_, k) => cycle.filter((x) => x === k).length);
      if (counts.join() !== weights.join()) return t.fail(`weights ${weights}: cycle at ${i} gave ${counts}`);
    }
    // Smooth: after any k connections each target has served within one of its share k·w/W,
    // where a plain weighted rotation would give the heavy target its w turns in a row.
    const served = weights.map(() => 0);
    let worst = 0;
    seq.forEach((x, k) => {
      served[x]! += 1;
      for (let i = 0; i < weights.length; i++) worst = Math.max(worst, Math.abs(served[i]! - ((k + 1) * weights[i]!) / total));
    });
    t.log(`weights ${weights}: first picks ${seq.slice(0, Math.min(total, 16)).join(" ")}; largest lag behind the share ${worst.toFixed(3)}`);
    t.true(worst < 1, `weights ${weights}: a target was ${worst} turns off its share`);
  }
});

test("random: 100,000 picks over weights 1,1,2,4 give 1/8, 1/8, 1/4, 1/2 ± 0.01; a down target none", (t) => {
  const ts = targets([1, 1, 2, 4]);
  const got = shares(make("random", ts), ts, 100_000);
  t.log(`random shares: ${got.map((g) => g.toFixed(4)).join(" ")}`);
  near(t, got, [0.125, 0.125, 0.25, 0.5], 0.01);
  const withoutD = shares(make("random", ts, undefined, seeded(2)), ts, 40_000, (x) => x !== ts[3]);
  near(t, withoutD, [0.25, 0.25, 0.5, 0], 0.015);
});

test("least-connections: the fewest open per weight goes first; ties rotate; kept even while connections open", (t) => {
  const ts = targets([1, 1, 1, 1]);
  const open = new OpenConnections();
  const b = make("least-connections", ts, open);
  [3, 1, 2, 5].forEach((n, i) => {
    for (let k = 0; k < n; k++) open.connected(ts[i]!);
  });
  t.deepEqual(b.order(allUp).map((x) => ts.indexOf(x)), [1, 2, 0, 3]);
  // Its only rival down: the fullest one is still tried before the down one.
  t.deepEqual(b.order((x) => x !== ts[1]).map((x) => ts.indexOf(x)), [2, 0, 3, 1]);

  // A burst sees equal counts (a count rises only on connect): the first choices rotate.
  const idle = new OpenConnections();
  const burst = make("least-connections", ts, idle);
  t.deepEqual(Array.from({ length: 4 }, () => ts.indexOf(burst.order(allUp)[0]!)), [0, 1, 2, 3]);

  // Connections that open and close at random: every pick is one of the least loaded.
  const w = targets([1, 1, 2, 4]);
  const counts = new OpenConnections();
  const lc = make("least-connections", w, counts);
  const random = seeded(5);
  const live: Target[] = [];
  for (let i = 0; i < 5000; i++) {
    if (live.length > 0 && random() < 0.45) counts.closed(live.splice(Math.floor(random() * live.length), 1)[0]!);
    const first = lc.order(allUp)[0]!;
    if (w.some((x) => counts.compare(x, first) < 0)) return t.fail(`pick ${i}: ${first.label} was not among the least loaded`);
    counts.connected(first);
    live.push(first);
  }
  // Opened and never closed, 800 connections settle in proportion to the weights.
  const steady = new OpenConnections();
  const s = make("least-connections", w, steady);
  for (let i = 0; i < 800; i++) steady.connected(s.order(allUp)[0]!);
  t.deepEqual(w.map((x) => steady.count(x)), [100, 100, 200, 400]);
});

test("power-of-two: never the more loaded of its two; with loads 0,1,2,3 shares 1/2, 1/3, 1/6, 0", (t) => {
  const ts = targets([1, 1, 1, 1]);
  const open = new OpenConnections();
  [0, 1, 2, 3].forEach((n, i) => {
    for (let k = 0; k < n; k++) open.connected(ts[i]!);
  });
  const b = make("power-of-two", ts, open);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 100_000; i++) {
    const [first, second] = b.order(allUp);
    if (open.compare(first!, second!) > 0) return t.fail(`${first!.label} (${open.count(first!)}) before ${second!.label} (${open.count(second!)})`);
    counts[ts.indexOf(first!)]! += 1;
  }
  const got = counts.map((c) => c / 100_000);
  t.log(`power-of-two shares: ${got.map((g) => g.toFixed(4)).join(" ")}`);
  // The most loaded loses every pair it is drawn into; the least loaded wins every one (3 of the 6 pairs).
  t.is(counts[3], 0);
  near(t, got, [1 / 2, 1 / 3, 1 / 6, 0], 0.01);
  // Weights divide the load: 2 open on weight 4 is lighter than 1 open on weight 1.
  const w = [target("10.0.0.1:80", 1), target("10.0.0.2:80", 4)];
  const wo = new OpenConnections();
  wo.connected(w[0]!);
  wo.connected(w[1]!);
  wo.connected(w[1]!);
  const pw = make("power-of-two", w, wo);
  t.true(Array.from({ length: 100 }, () => pw.order(allUp)[0]).every((x) => x === w[1]));
});

/** 10,000 client addresses, consecutive: the hardest case for a weak hash. */
const clients = Array.from({ length: 10_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
const assign = (b: Balancer, isUp: (t: Target) => boolean = allUp): string[] => clients.map((c) => b.order(isUp, c)[0]!.label);

test("source-hash: a client always gets the same target, in every worker; 10,000 clients spread evenly and by weight", (t) => {
  const ts = targets([1, 1, 1, 1, 1]);
  const a = assign(make("source-hash", ts));
  // Another instance (another worker, another generation) and the same instance again agree.
  t.deepEqual(assign(make("source-hash", ts)), a);
  const b = make("source-hash", ts);
  t.true(clients.slice(0, 100).every((c) => b.order(allUp, c)[0] === b.order(allUp, c)[0]));
  const even = ts.map((x) => a.filter((l) => l === x.label).length / clients.length);
  t.log(`source-hash shares over 5: ${even.map((g) => g.toFixed(4)).join(" ")}`);
  near(t, even, [0.2, 0.2, 0.2, 0.2, 0.2], 0.02);
  // Listing the targets in another order moves no one.
  t.deepEqual(assign(make("source-hash", [...ts].reverse())), a);

  const w = targets([1, 1, 2, 4]);
  const weighted = assign(make("source-hash", w));
  const ws = w.map((x) => weighted.filter((l) => l === x.label).length / clients.length);
  t.log(`source-hash shares, weights 1,1,2,4: ${ws.map((g) => g.toFixed(4)).join(" ")}`);
  near(t, ws, [0.125, 0.125, 0.25, 0.5], 0.02);
});

test("source-hash: adding a 6th target moves about 1/6 of 10,000 clients, all to it; removing one moves only its own", (t) => {
  const five = targets([1, 1, 1, 1, 1]);
  const before = assign(make("source-hash", five));
  const sixth = target("10.0.0.6:80");
  const after = assign(make("source-hash", [...five, sixth]));
  const moved = clients.filter((_, i) => after[i] !== before[i]);
  t.log(`adding a 6th: ${moved.length} of ${clients.length} moved (${((moved.length / clients.length) * 100).toFixed(1)} %)`);
  t.true(moved.length >= 1000 && moved.length <= 2500, `${moved.length} moved`);
  t.true(clients.every((_, i) => after[i] === before[i] || after[i] === sixth.label), "a client moved between two old targets");

  const gone = five[2]!;
  const four = five.filter((x) => x !== gone);
  const removed = assign(make("source-hash", four));
  const movedOut = clients.filter((_, i) => removed[i] !== before[i]);
  t.log(`removing 1 of 5: ${movedOut.length} moved (${((movedOut.length / clients.length) * 100).toFixed(1)} %)`);
  t.true(movedOut.length >= 1500 && movedOut.length <= 2500, `${movedOut.length} moved`);
  // Exactly the removed target's clients moved, and nobody else.
  t.deepEqual(movedOut, clients.filter((_, i) => before[i] === gone.label));

  // A target merely down: the same clients move, to the same second choices.
  const whileDown = assign(make("source-hash", five), (x) => x !== gone);
  t.deepEqual(whileDown, removed);

  // A weight change moves only the clients the heavier target now wins.
  const heavier = assign(make("source-hash", five.map((x) => (x === gone ? target(x.label, 2) : x))));
  t.true(clients.every((_, i) => heavier[i] === before[i] || heavier[i] === gone.label), "a weight change moved clients between other targets");
});

test("source-hash: a repeated address draws its own scores; the client address is what it hashes", (t) => {
  const ts = [target("10.0.0.1:80"), target("10.0.0.1:80"), target("10.0.0.2:80")];
  const b = make("source-hash", ts);
  const firsts = new Set(clients.slice(0, 3000).map((c) => b.order(allUp, c)[0]));
  t.is(firsts.size, 3, "each copy of the repeated address wins some clients");
  t.true(b.usesClient === true);
  t.false(make("round-robin", ts).usesClient === true);
});

test("target load: (open + 1) / weight, exactly", (t) => {
  const open = new OpenConnections();
  const [a, b] = [target("h:1", 1), target("h:2", 3)];
  t.true(open.compare(b, a) < 0, "an idle weight-3 target comes before an idle weight-1 one");
  open.connected(b);
  open.connected(b);
  t.is(open.compare(a, b), 0);
  open.closed(b);
  open.closed(b);
  open.closed(b);
  t.is(open.count(b), 0, "a count never goes below zero");
});
