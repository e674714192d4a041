// Turns a parsed JSON value into a Plan, or a ConfigError listing the problems:
// schema problems, limits, cross-app problems and duplicate JSON keys, all in one go
// (the first MAX_REPORTED_PROBLEMS of them, and how many more there are).
//
// Apps are checked one at a time so that at most one app's issues exist at once,
// and only the first MAX_APPS: a file listing more is refused for that anyway.

import type { ConfigProblem } from "../common/errors.js";
import { ALL_ADDRESSES } from "./addresses.js";
import { parseServerName } from "./server-names.js";
import { appFacts, duplicateNames, portConflicts, type AppFacts } from "./conflicts.js";
import { addIssues } from "./issues.js";
import { limitProblems, MAX_APPS } from "./limits.js";
import type { AppPlan, Plan, Target } from "./plan.js";
import { expandPorts } from "./ports.js";
import { ProblemCollector } from "./problems.js";
import {
  allowedKeysAt,
  checkApp,
  checkRoot,
  DEFAULT_BALANCE,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_HEALTH_CHECK,
  type AppConfig,
  type ConfigFile,
} from "./schema.js";
import { parseTarget } from "./targets.js";

function rawApps(value: unknown): unknown[] {
  if (typeof value !== "object" || value === null) return [];
  const apps = (value as { Apps?: unknown }).Apps;
  return Array.isArray(apps) ? apps : [];
}

function buildApp(app: AppConfig, facts: AppFacts): AppPlan {
  const targets: Target[] = app.Targets.map((label) => {
    const t = parseTarget(label);
    // The schema ran the same parser; reaching this means the two disagree.
    if (!t.ok) throw new Error(`internal: target ${label} passed the schema but not the parser`);
    return t.value;
  });
  const addresses = Array.isArray(facts.addresses) ? [...new Set(facts.addresses.map((p) => p.cidr))] : [...ALL_ADDRESSES];
  return {
    name: app.Name,
    index: facts.index,
    ports: expandPorts(facts.ports.map((p) => p.range)),
    addresses,
    targets,
    balance: app.Balance ?? DEFAULT_BALANCE,
    connectTimeoutMs: app.ConnectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    idleTimeoutMs: app.IdleTimeoutMs ?? null,
    healthCheck: app.HealthCheck
      ? {
          intervalMs: app.HealthCheck.IntervalMs ?? DEFAULT_HEALTH_CHECK.intervalMs,
          timeoutMs: app.HealthCheck.TimeoutMs ?? DEFAULT_HEALTH_CHECK.timeoutMs,
          rise: app.HealthCheck.Rise ?? DEFAULT_HEALTH_CHECK.rise,
          fall: app.HealthCheck.Fall ?? DEFAULT_HEALTH_CHECK.fall,
        }
      : null,
    maxConnections: app.MaxConnections ?? null,
    maxConnectionsPerClient: app.MaxConnectionsPerClient ?? null,
    proxyProtocol: app.ProxyProtocol ?? null,
    acceptProxyProtocol: app.AcceptProxyProtocol ?? false,
    serverNames: [...new Set((app.ServerNames ?? []).map((n) => (parseServerName(n) as { value: string }).value))],
  };
}

/** Problems found before the schema ran (duplicate JSON keys): the first few, and how many more. */
export interface EarlierProblems {
  problems: readonly ConfigProblem[];
  omitted?: number;
}

export function planFromValue(value: unknown, earlier: EarlierProblems = { problems: [] }): Plan {
  const sink = new ProblemCollector();
  for (const p of earlier.problems) sink.add(p);
  sink.skip(earlier.omitted ?? 0);
  const rootIssues = checkRoot(value);
  addIssues(sink, rootIssues, allowedKeysAt);
  const raw = rawApps(value).slice(0, MAX_APPS);
  const apps: AppConfig[] = [];
  raw.forEach((app, i) => {
    const issues = checkApp(app);
    if (issues.length === 0) apps.push(app as AppConfig);
    else addIssues(sink, issues, allowedKeysAt, ["Apps", i]);
  });
  const facts = raw.map(appFacts);
  const limits = limitProblems(rawApps(value).length, facts);
  for (const p of limits) sink.add(p);
  duplicateNames(facts, sink);
  // Beyond the limits the ports are not walked at all: that walk is what they bound.
  if (limits.length === 0) portConflicts(facts, sink);
  if (sink.count > 0 || rootIssues.length > 0 || apps.length !== raw.length) throw sink.error();
  return { apps: apps.map((app, i) => buildApp(app, facts[i]!)) };
}

/**
 * Plan for a config already shaped like the file. The type cannot express the value
 * rules (port ranges, target syntax, overlaps), so the config is checked again.
 */
export function planFromConfig(config: ConfigFile): Plan {
  return planFromValue(config);
}
