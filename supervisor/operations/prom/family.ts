// The shape every metric family takes in memory and on the wire: prom-client's
// getMetricsAsJSON(). Workers send it (common/messages.ts), an old supervisor
// hands its totals over in it, so this shape (keys, key order, label order)
// is a protocol: it stays prom-client's even though prom-client is gone.

/** How families of the same name from several sources combine (prom-client's aggregators). */
export type Aggregator = "sum" | "first" | "min" | "max" | "average" | "omit";

export type LabelValue = string | number;
export type Labels = Record<string, LabelValue>;

/** One value; a histogram's carry `metricName` (`_bucket` with an `le` label, `_sum`, `_count`). */
export interface Sample {
  value: number;
  labels: Labels;
  metricName?: string;
}

export interface Family {
  help: string;
  name: string;
  type: "counter" | "gauge" | "histogram";
  values: Sample[];
  aggregator: Aggregator;
}

/**
 * The key one label set is kept under: prom-client's hashObject, which both
 * the aggregation (workers' label sets) and the instruments use. `names`
 * (sorted) when the caller knows them, else the labels' own keys, sorted.
 * Undefined values are left out, as prom-client leaves them.
 */
export function labelKey(labels: Labels, names?: readonly string[]): string {
  let key = "";
  for (const name of names ?? Object.keys(labels).sort()) {
    const value = labels[name];
    if (value !== undefined) key += `${name}:${value},`;
  }
  return key;
}
