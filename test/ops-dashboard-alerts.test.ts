// The Grafana dashboard and the Prometheus alerting rules in ops/: promtool
// accepts the rules, every metric they name is one the proxy really exports,
// and the dashboard covers every switchyard_* family /metrics shows.
import test from "ava";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { repoRoot, startSupervisor } from "./helpers/supervisor.js";
import { freePorts, startTarget } from "./helpers/net.js";

const dashboardFile = path.join(repoRoot, "ops/grafana-dashboard.json");
const rulesFile = path.join(repoRoot, "ops/prometheus-alerts.yml");

/** switchyard_* families named in a text, suffixes of histograms folded onto their family. */
function namesIn(text: string): Set<string> {
  return new Set([...text.matchAll(/\bswitchyard_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, "")));
}

test("promtool check rules accepts ops/prometheus-alerts.yml", (t) => {
  const r = spawnSync("promtool", ["check", "rules", rulesFile], { encoding: "utf8" });
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /SUCCESS: \d+ rules found/);
});

test("the dashboard and the rules name only metrics /metrics exports, and the dashboard covers all of them", async (t) => {
  const target = await startTarget("echo");
  const [port] = (await freePorts(1)) as [number];
  const sup = await startSupervisor({ config: { Apps: [{ Name: "d", Ports: [port], Addresses: ["127.0.0.1"], Targets: [`127.0.0.1:${target.port}`], HealthCheck: { IntervalMs: 200 }, MaxConnections: 10 }] }, workers: 1, args: ["--access-log", "off"] });
  t.teardown(async () => {
    await sup.stop();
    await target.close();
  });
  const metrics = (await sup.admin("/metrics")).body;
  const exported = new Set([...metrics.matchAll(/^# HELP (switchyard_[a-z_]+)/gm)].map((m) => m[1]!));
  t.true(exported.size >= 15, [...exported].join(" "));

  const dashboard = JSON.parse(fs.readFileSync(dashboardFile, "utf8")) as { panels: { title: string; targets: { expr: string }[] }[] };
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((x) => x.expr));
  t.true(exprs.length > 0);
  const inDashboard = namesIn(exprs.join("\n"));
  const inRules = namesIn(fs.readFileSync(rulesFile, "utf8"));
  t.deepEqual([...inDashboard].filter((n) => !exported.has(n)), [], "the dashboard names metrics that do not exist");
  t.deepEqual([...inRules].filter((n) => !exported.has(n)), [], "the rules name metrics that do not exist");
  t.deepEqual([...exported].filter((n) => !inDashboard.has(n)), [], "metrics the dashboard does not show");
});
