// Samples, per metric and party, as the measurements produce them; the report
// reads medians from here. A party that could not be measured gets a note instead.

export interface Metric {
  /** Report section the metric belongs to. */
  section: string;
  label: string;
  unit: string;
  digits: number;
  /** Whether switchyard/HAProxy and switchyard/direct ratios mean anything (not for error counts). */
  ratio: boolean;
}

interface Entry {
  metric: Metric;
  samples: Map<string, number[]>;
  notes: Map<string, string>;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function metric(section: string, label: string, unit: string, digits = 0, ratio = true): Metric {
  return { section, label, unit, digits, ratio };
}

export class Recorder {
  private readonly entries = new Map<string, Entry>();
  /** Free text under a section's table (per-worker shares, failure details). */
  readonly texts = new Map<string, string[]>();

  private entry(m: Metric): Entry {
    const key = `${m.section}\u0000${m.label}`;
    let e = this.entries.get(key);
    if (!e) this.entries.set(key, (e = { metric: m, samples: new Map(), notes: new Map() }));
    return e;
  }

  add(m: Metric, party: string, value: number): void {
    const e = this.entry(m);
    if (!Number.isFinite(value)) return;
    e.samples.set(party, [...(e.samples.get(party) ?? []), value]);
  }

  /** Puts the metric's row in its place in the table now; its figures come later (derived.ts). */
  declare(m: Metric): void {
    this.entry(m);
  }

  /** A reason the party has no figure (first one kept: rounds usually fail alike). */
  note(m: Metric, party: string, text: string): void {
    const e = this.entry(m);
    if (!e.notes.has(party)) e.notes.set(party, text);
  }

  text(section: string, line: string): void {
    this.texts.set(section, [...(this.texts.get(section) ?? []), line]);
  }

  sections(): string[] {
    return [...new Set([...this.entries.values()].map((e) => e.metric.section))];
  }

  metrics(section: string): Entry[] {
    return [...this.entries.values()].filter((e) => e.metric.section === section);
  }

  /** NaN when there is none; asking adds no row. */
  median(m: Metric, party: string): number {
    return median(this.entries.get(`${m.section}\u0000${m.label}`)?.samples.get(party) ?? []);
  }
}

export type { Entry };
