// Routing and balancing: every configured port reaches a target of its own app,
// round-robin shares connections evenly, and a dead target costs no connection.
import test, { type ExecutionContext } from "ava";
import crypto from "node:crypto";
import { startSupervisor, type RunningSupervisor } from "./helpers/supervisor.js";
import { exchange, freePorts, startTarget, whoServes, type Target } from "./helpers/net.js";

/** Runs `fn` over `items` with at most `width` in flight. */
async function inParallel<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/**
 * Starts the supervisor, stopped at the test's end before `targets` are closed;
 * the targets are closed even when the supervisor does not start (a port taken
 * meanwhile), or the file could not exit.
 */
async function supervisorFor(t: ExecutionContext, opts: Parameters<typeof startSupervisor>[0], targets: Target[]): Promise<RunningSupervisor> {
  let sup: RunningSupervisor | undefined;
  t.teardown(async () => {
    await sup?.stop();
    await Promise.all(targets.map((x) => x.close()));
  });
  sup = await startSupervisor(opts);
  return sup;
}

test("every port reaches its own app's targets; round-robin shares 200 connections evenly", async (t) => {
  const targets = await Promise.all(["alpha-1", "beta-1", "beta-2", "fair-1", "fair-2", "fair-3", "fair-4"].map((n) => startTarget(n, { tag: true })));
  const byName = new Map(targets.map((x) => [x.name, x]));
  const addr = (n: string) => `127.0.0.1:${byName.get(n)!.port}`;
  const ports = await freePorts(8);
  const apps = {
    alpha: { ports: ports.slice(0, 3), targets: ["alpha-1"] },
    beta: { ports: ports.slice(3, 6), targets: ["beta-1", "beta-2"] },
    fair: { ports: ports.slice(6, 8), targets: ["fair-1", "fair-2", "fair-3", "fair-4"] },
  };
  const config = { Apps: Object.entries(apps).map(([Name, a]) => ({ Name, Ports: a.ports, Targets: a.targets.map(addr) })) };
  const sup = await supervisorFor(t, { config, workers: 2 }, targets);

  for (const [name, a] of Object.entries(apps)) {
    for (const port of a.ports) {
      const served = await whoServes(port);
      t.true(a.targets.includes(served), `port ${port} of app ${name} was served by ${served}`);
    }
  }
  // Both of beta's targets take part.
  const betaSeen = new Set(await inParallel(Array.from({ length: 20 }, (_, i) => apps.beta.ports[i % 3]!), 4, (p) => whoServes(p)));
  t.deepEqual([...betaSeen].sort(), ["beta-1", "beta-2"]);

  // Each worker keeps its own round-robin cursor per app and advances it once per
  // connection, so a worker that accepted n connections gave each of the 4 targets
  // floor(n/4) or ceil(n/4). Summed over 2 workers, every target gets 50 ± 2 of 200,
  // whichever worker accepted which. A balancer that favours one target, or a random
  // one (standard deviation ≈ 6 per target), fails this bound.
  const counts = new Map<string, number>();
  const before = apps.fair.targets.map((n) => byName.get(n)!.connections);
  const served = await inParallel(Array.from({ length: 200 }, (_, i) => apps.fair.ports[i % 2]!), 8, (p) => whoServes(p));
  for (const s of served) counts.set(s, (counts.get(s) ?? 0) + 1);
  t.deepEqual([...counts.keys()].sort(), apps.fair.targets, `fair app served by ${JSON.stringify([...counts])}`);
  for (const n of apps.fair.targets) {
    const c = counts.get(n) ?? 0;
    t.true(c >= 48 && c <= 52, `target ${n} got ${c} of 200 connections: ${JSON.stringify([...counts])}`);
  }
  // The targets saw exactly those connections (no retries, nothing doubled).
  t.deepEqual(
    apps.fair.targets.map((n, i) => byName.get(n)!.connections - before[i]!),
    apps.fair.targets.map((n) => counts.get(n) ?? 0),
  );
});

test("a closed target port next to a live one: all 50 connections succeed through the live one", async (t) => {
  const live = await startTarget("live");
  // A port that was free a moment ago and that nothing listens on: connecting is refused.
  const [closedPort, port] = await freePorts(2);
  const config = { Apps: [{ Name: "half-dead", Ports: [port!], Targets: [`127.0.0.1:${closedPort}`, `127.0.0.1:${live.port}`] }] };
  const sup = await supervisorFor(t, { config, workers: 2 }, [live]);

  const results = await inParallel(Array.from({ length: 50 }, (_, i) => i), 5, async () => {
    const payload = crypto.randomBytes(512);
    try {
      const reply = await exchange(port!, payload);
      return reply.equals(payload) ? "ok" : `wrong bytes (${reply.length})`;
    } catch (e) {
      return `error ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
  });
  t.deepEqual(results.filter((r) => r !== "ok"), [], "every connection must be carried");
  t.is(live.connections, 50);
  // The dead target was really in the rotation: a worker tried it and was refused.
  const failure = await sup.waitFor((l) => l.event === "upstream_connect_failed" && l.target === `127.0.0.1:${closedPort}`, 5000);
  t.is(failure.reason, "refused");
});

test("targets given by name: localhost is reached, and a name that does not resolve costs no connection", async (t) => {
  const live = await startTarget("named", { tag: true });
  const [port] = await freePorts(1);
  // `.invalid` never resolves (RFC 2606): the worker moves on to the next target.
  const config = { Apps: [{ Name: "named", Ports: [port!], Targets: ["no-such-host.invalid:80", `localhost:${live.port}`] }] };
  const sup = await supervisorFor(t, { config, workers: 1 }, [live]);
  const served = await inParallel(Array.from({ length: 20 }, (_, i) => i), 4, () => whoServes(port!));
  t.deepEqual([...new Set(served)], ["named"]);
  const failure = await sup.waitFor((l) => l.event === "upstream_connect_failed" && l.target === "no-such-host.invalid:80", 5000);
  // "timeout" where the resolver takes longer to say no than the connect timeout allows.
  t.true(failure.reason === "error" || failure.reason === "timeout", JSON.stringify(failure));
});
