// After a reload, new connections follow the new config only: changed targets,
// an added app's ports, a removed app's port refused, while a connection the
// removed app already carried drains to its end.
import test from "ava";
import crypto from "node:crypto";
import net from "node:net";
import { runCli, startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget, whoServes } from "./helpers/net.js";
import { hold } from "./helpers/held.js";
import { app, config, reloadVia, sighup, status } from "./helpers/reload.js";

// The watch may notice the save too and coalesce it with the signal ("file,sighup").
const bySighup = (source: string): boolean => source.split(",").includes("sighup");

/** `n` new connections, 10 at a time; the tag of the target each reached. */
async function tagsOf(port: number, n: number): Promise<string[]> {
  const tags: string[] = [];
  for (let i = 0; i < n; i += 10) tags.push(...(await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => whoServes(port)))));
  return tags;
}

const count = (xs: string[]): Record<string, number> => xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

function connectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(undefined);
    });
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

test.serial("after a reload from {a1,a2} to {b1,b2}, 100 new connections reach b1 and b2 only", async (t) => {
  const targets = await Promise.all(["a1", "a2", "b1", "b2"].map((n) => startTarget(n, { tag: true })));
  t.teardown(() => Promise.all(targets.map((x) => x.close())));
  const [a1, a2, b1, b2] = targets as [typeof targets[0], typeof targets[0], typeof targets[0], typeof targets[0]];
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("tag", [port!], [a1, a2])), workers: 2, drainTimeout: 10, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop());

  // Before: the a's serve, so a change afterwards is the reload's doing.
  t.deepEqual(Object.keys(count(await tagsOf(port!, 20))).sort(), ["a1", "a2"]);

  sup.writeConfig(config(app("tag", [port!], [b1, b2])));
  const r = await reloadVia(sup, sighup(sup), bySighup);
  t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));
  const aBefore = a1.connections + a2.connections;

  const after = count(await tagsOf(port!, 100));
  t.log(`after the reload: ${JSON.stringify(after)}`);
  t.deepEqual(Object.keys(after).sort(), ["b1", "b2"]);
  t.is((after.b1 ?? 0) + (after.b2 ?? 0), 100);
  t.is(a1.connections + a2.connections, aBefore, "an a-target was dialled after the reload");
});

test.serial("a reload adding an app and removing another: new ports serve, the removed port refuses, its open connection drains", async (t) => {
  const [keep, gone, added] = await Promise.all(["keep", "gone", "added"].map((n) => startTarget(n, { tag: true })));
  t.teardown(() => Promise.all([keep!, gone!, added!].map((x) => x.close())));
  const [keepPort, gonePort, newPort1, newPort2] = (await freePorts(4)) as [number, number, number, number];
  const before = config(app("keep", [keepPort], [keep!]), app("gone", [gonePort], [gone!]));
  const sup = await startSupervisor({ config: before, workers: 2, drainTimeout: 20, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop());

  // Not served yet: the new ports refuse.
  t.is(await connectError(newPort1), "ECONNREFUSED");
  // A tagging target writes its name first, then echoes: the stream back is the tag, then every byte sent.
  const draining = await hold(gonePort);
  t.teardown(() => draining.socket.destroy());
  const sent: Buffer[] = [];
  const got: Buffer[] = [];
  const send = async (payload: Buffer): Promise<void> => {
    sent.push(payload);
    got.push(await draining.roundTrip(payload));
  };
  await send(crypto.randomBytes(2048));
  t.is(got[0]!.subarray(0, 5).toString(), "gone\n");

  sup.writeConfig(config(app("keep", [keepPort], [keep!]), app("added", [newPort1, newPort2], [added!])));
  const r = await reloadVia(sup, sighup(sup), bySighup);
  t.is(r.ended.event, "reload_succeeded", JSON.stringify(r.ended));

  // A reload ends once the old workers let go of their copies of the removed socket: it is gone at once.
  t.is(await connectError(gonePort), "ECONNREFUSED");
  t.deepEqual(count(await tagsOf(newPort1, 10)), { added: 10 });
  t.deepEqual(count(await tagsOf(newPort2, 10)), { added: 10 });
  t.deepEqual(count(await tagsOf(keepPort, 10)), { keep: 10 });
  const goneServed = gone!.connections;

  // The connection opened before the reload still carries data both ways, to its end.
  await send(crypto.randomBytes(4096));
  const last = crypto.randomBytes(512);
  sent.push(last);
  got.push(await draining.finish(last));
  t.true(Buffer.concat(got).equals(Buffer.concat([Buffer.from("gone\n"), ...sent])), "the draining connection's bytes differ");
  t.is(gone!.connections, goneServed);
  const s = await status(sup);
  t.deepEqual(s.apps.map((a) => a.name).sort(), ["added", "keep"]);
});

test.serial("a removed port refuses as soon as the reload ends, and can be added back by the next reload", async (t) => {
  const [keep, back] = await Promise.all(["keep", "back"].map((n) => startTarget(n, { tag: true })));
  t.teardown(() => Promise.all([keep!, back!].map((x) => x.close())));
  const [keepPort, backPort] = (await freePorts(2)) as [number, number];
  const withBack = config(app("keep", [keepPort], [keep!]), app("back", [backPort], [back!]));
  const without = config(app("keep", [keepPort], [keep!]));
  const sup = await startSupervisor({ config: withBack, workers: 2, drainTimeout: 10, args: ["--access-log", "off"] });
  t.teardown(() => sup.stop());

  // Back-to-back: each reload runs while the generation before is still draining.
  for (let i = 1; i <= 6; i++) {
    const removing = i % 2 === 1;
    sup.writeConfig(removing ? without : withBack);
    const r = await reloadVia(sup, sighup(sup), bySighup);
    t.is(r.ended.event, "reload_succeeded", `reload ${i}: ${JSON.stringify(r.ended)}`);
    if (removing) t.deepEqual(await Promise.all(Array.from({ length: 5 }, () => connectError(backPort))), Array(5).fill("ECONNREFUSED"), `reload ${i}`);
    else t.deepEqual(count(await tagsOf(backPort, 10)), { back: 10 }, `reload ${i}`);
  }
});

test("ports mode: a port moved from 127.0.0.1 to every address is refused with the reason; the old listener serves on", async (t) => {
  const target = await startTarget("a", { tag: true });
  t.teardown(() => target.close());
  const [port] = await freePorts(1);
  const sup = await startSupervisor({ config: config(app("mv", [port!], [target])), workers: 1, steering: "ports" });
  t.teardown(() => sup.stop());
  // The same app without "Addresses": every local address.
  sup.writeConfig({ Apps: [{ Name: "mv", Ports: [port], Targets: [`127.0.0.1:${target.port}`] }] });
  const r = await runCli(["ctl", "--runtime-dir", sup.runtimeDir, "reload"]);
  t.not(r.code, 0);
  t.regex(r.stdout + r.stderr, new RegExp(`cannot listen on 0\\.0\\.0\\.0:${port} \\(app mv\\): EADDRINUSE: this supervisor listens on 127\\.0\\.0\\.1:${port} \\(app mv\\); in ports mode a port cannot change its address`));
  t.is(await whoServes(port!), "a");
  t.is((await sup.admin("/healthz")).status, 200);
});
