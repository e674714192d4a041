// Turns a parsed JSON value into a Plan, or a ConfigError listing every problem:
// schema problems, cross-app problems and duplicate JSON keys, all in one go.

import { ConfigError, type ConfigProblem } from "../common/errors.js";
import { ALL_ADDRESSES } from "./addresses.js";
import { appFacts, crossAppProblems, type AppFacts } from "./conflicts.js";
import { problemsFromIssues } from "./issues.js";
import type { AppPlan, Plan, Target } from "./plan.js";
import { expandPorts } from "./ports.js";
import {
  allowedKeysAt,
  ConfigSchema,
  DEFAULT_BALANCE,
  DEFAULT_CONNECT_TIMEOUT_MS,
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
  };
}

/**
 * @param extra problems found before the schema ran (duplicate JSON keys), reported
 *   together with the schema's.
 */
export function planFromValue(value: unknown, extra: readonly ConfigProblem[] = []): Plan {
  const result = ConfigSchema.safeParse(value);
  const facts = rawApps(value).map(appFacts);
  const problems = [
    ...extra,
    ...(result.success ? [] : problemsFromIssues(result.error.issues, allowedKeysAt)),
    ...crossAppProblems(facts),
  ];
  if (problems.length > 0 || !result.success) throw new ConfigError(problems, { cause: result.error });
  return { apps: result.data.Apps.map((app, i) => buildApp(app, facts[i]!)) };
}

/**
 * Plan for a config already shaped like the file. The type cannot express the value
 * rules (port ranges, target syntax, overlaps), so the config is checked again.
 */
export function planFromConfig(config: ConfigFile): Plan {
  return planFromValue(config);
}
