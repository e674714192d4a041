// Families of the same name from several sources (workers, retired workers, a
// predecessor, this supervisor) combined into one each, as prom-client's
// AggregatorRegistry.aggregate did: by name in order of first appearance,
// then by metric name and label set in order of first appearance, each value
// combined by the aggregator the first family of that name declares.
import { labelKey, type Aggregator, type Family, type Sample } from "./family.js";

type Combine = (values: Sample[]) => number;

const COMBINE: Record<Exclude<Aggregator, "omit">, Combine> = {
  sum: (v) => v.reduce((p, c) => p + c.value, 0),
  first: (v) => v[0]!.value,
  average: (v) => v.reduce((p, c) => p + c.value, 0) / v.length,
  min: (v) => v.reduce((p, c) => Math.min(p, c.value), Infinity),
  max: (v) => v.reduce((p, c) => Math.max(p, c.value), -Infinity),
};

function combine(families: Family[]): Family | undefined {
  const first = families[0]!;
  if (first.aggregator === "omit") return undefined;
  // A name from the wire that is no aggregator: prom-client threw, and so do we (the scrape fails, not the process).
  if (!Object.hasOwn(COMBINE, first.aggregator)) throw new Error(`'${String(first.aggregator)}' is not a defined aggregator.`);
  const fn = COMBINE[first.aggregator];
  const bySeries = new Map<string, Sample[]>();
  for (const f of families) {
    for (const v of f.values) {
      const key = `${v.metricName}_${labelKey(v.labels)}`;
      const same = bySeries.get(key);
      if (same) same.push(v);
      else bySeries.set(key, [v]);
    }
  }
  const values: Sample[] = [];
  for (const same of bySeries.values()) {
    const out: Sample = { value: fn(same), labels: same[0]!.labels };
    if (same[0]!.metricName) out.metricName = same[0]!.metricName;
    values.push(out);
  }
  return { help: first.help, name: first.name, type: first.type, values, aggregator: first.aggregator };
}

export function aggregate(snapshots: readonly (readonly Family[])[]): Family[] {
  const byName = new Map<string, Family[]>();
  for (const snapshot of snapshots) {
    for (const f of snapshot) {
      const same = byName.get(f.name);
      if (same) same.push(f);
      else byName.set(f.name, [f]);
    }
  }
  const out: Family[] = [];
  for (const same of byName.values()) {
    const f = combine(same);
    if (f) out.push(f);
  }
  return out;
}
