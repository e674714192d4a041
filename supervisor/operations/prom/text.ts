// The Prometheus text exposition format (0.0.4), written exactly as
// prom-client 15 wrote it, so /metrics reads the same to scrapers, promtool
// and anyone diffing it: HELP and TYPE lines, labels in the order of the
// sample's label object, numbers as JavaScript prints them, a blank line
// between families and one newline at the end.
import type { Family, LabelValue } from "./family.js";

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const escapeText = (s: string): string => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

/** Strings escaped; a number (a bucket's `le`) printed as it is. */
const labelValue = (v: LabelValue): string => (typeof v === "string" ? escapeText(v).replace(/"/g, '\\"') : `${v}`);

/** prom-client's spelling of the special values ("Nan", not "NaN": both parse). */
function valueText(v: number): string {
  if (Number.isNaN(v)) return "Nan";
  if (!Number.isFinite(v)) return v < 0 ? "-Inf" : "+Inf";
  return `${v}`;
}

function familyText(f: Family): string {
  const name = escapeText(f.name);
  const lines = [`# HELP ${name} ${escapeText(f.help)}`, `# TYPE ${name} ${f.type}`];
  for (const s of f.values) {
    const labels = Object.entries(s.labels ?? {}).map(([k, v]) => `${k}="${labelValue(v)}"`);
    lines.push(`${s.metricName ?? name}${labels.length > 0 ? `{${labels.join(",")}}` : ""} ${valueText(s.value)}`);
  }
  return lines.join("\n");
}

/** The families in the order given; one name twice is a bug upstream (prom-client threw too). */
export function renderText(families: readonly Family[]): string {
  const seen = new Set<string>();
  for (const f of families) {
    if (seen.has(f.name)) throw new Error(`A metric with the name ${f.name} has already been registered.`);
    seen.add(f.name);
  }
  return `${families.map(familyText).join("\n\n")}\n`;
}
