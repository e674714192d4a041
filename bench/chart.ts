// bench/chart.svg: each goal's ratio for both switchyard modes as a horizontal
// bar, drawn by hand (no dependency) from results.json, for the README. Bars
// start at 1× (parity) on a log scale, so 0.5× and 2× are as long; the side
// of each row where the goal is met is shaded. Plain SVG text in the system's
// sans-serif, a white background (GitHub's dark theme shows images as they
// are), a viewBox so that it scales.
import fs from "node:fs";
import { GOALS, JUDGED, meets, type Goal } from "./goals.js";
import type { Results } from "./results-json.js";

const WIDTH = 900;
const LABEL_X = 20;
const PLOT = { x0: 400, x1: 860 };
const DOMAIN = { lo: 0.1, hi: 20 };
const TICKS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20];
const ROW_H = 52;
const TOP = 136;
const COLORS: Record<(typeof JUDGED)[number], string> = { "switchyard-ports": "#3566c8", "switchyard-bpf": "#9b4dca" };
const GOOD = "#1a7f37";
const BAD = "#cf222e";
const FONT = `-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif`;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const clamp = (v: number) => Math.min(DOMAIN.hi, Math.max(DOMAIN.lo, v));
const x = (v: number) => PLOT.x0 + ((Math.log10(clamp(v)) - Math.log10(DOMAIN.lo)) / (Math.log10(DOMAIN.hi) - Math.log10(DOMAIN.lo))) * (PLOT.x1 - PLOT.x0);
const r1 = (n: number) => n.toFixed(1);
const tick = (v: number) => `${v}×`;

function text(px: number, py: number, body: string, attrs = ""): string {
  return `<text x="${r1(px)}" y="${r1(py)}" ${attrs}>${body}</text>`;
}

/** One bar from 1× to the ratio, and its figure with ✓/✗ beside its end (inside the bar, in white, where there is no room outside). */
function bar(ratio: number | undefined, g: Goal, y: number, color: string, party: string): { shape: string; label: string } {
  if (ratio === undefined) return { shape: "", label: text(x(1) + 6, y + 11, `${esc(party)}: not measured`, `font-size="11" fill="#6e7781" font-style="italic"`) };
  const from = x(1);
  const to = x(ratio);
  const ok = meets(g, ratio);
  const figure = `${ratio < 10 ? ratio.toFixed(2) : ratio.toFixed(1)}×${ratio > DOMAIN.hi || ratio < DOMAIN.lo ? " (off scale)" : ""}`;
  const right = ratio >= 1;
  const width = 16 + figure.length * 6.6;
  const outside = right ? to + 5 + width <= WIDTH - 6 : to - 5 - width >= PLOT.x0 - 30;
  const lx = outside === right ? to + 5 : to - 5;
  const anchor = outside === right ? "start" : "end";
  // dx, not a space: SVG renderers collapse a space at the start of a tspan.
  const mark = `<tspan dx="4" fill="${outside ? (ok ? GOOD : BAD) : "#fff"}" font-weight="700">${ok ? "✓" : "✗"}</tspan>`;
  // Outside, a white halo keeps the figure readable over grid and goal lines.
  const look = outside ? `fill="#1f2328" stroke="#fff" stroke-width="3" paint-order="stroke"` : `fill="#fff"`;
  return {
    shape: `<rect x="${r1(Math.min(from, to))}" y="${r1(y)}" width="${r1(Math.max(1.5, Math.abs(to - from)))}" height="14" rx="2" fill="${color}"><title>${esc(`${party}: ${figure}, goal ${g.better === "higher" ? "≥" : "≤"} ${g.goal}× (${ok ? "met" : "not met"})`)}</title></rect>`,
    label: text(lx, y + 11, `${esc(figure)}${mark}`, `font-size="11.5" text-anchor="${anchor}" ${look}`),
  };
}

const rowY = (i: number) => TOP + i * ROW_H;

/** The row's band and the shaded side where the goal is met: under the grid. */
function rowBack(g: Goal, i: number): string[] {
  const y = rowY(i);
  const good = g.better === "higher" ? { from: x(g.goal), to: PLOT.x1 } : { from: PLOT.x0, to: x(g.goal) };
  return [
    ...(i % 2 ? [] : [`<rect x="10" y="${y}" width="${WIDTH - 20}" height="${ROW_H}" fill="#f6f8fa"/>`]),
    `<rect x="${r1(good.from)}" y="${y + 3}" width="${r1(good.to - good.from)}" height="${ROW_H - 6}" fill="#dafbe1"/>`,
  ];
}

/** The row's labels, bars and goal line, over the grid; the figures last, over the goal line. */
function rowFront(g: Goal, i: number, r: Results): string[] {
  const y = rowY(i);
  const arrow = g.better === "higher" ? "↑ higher is better" : "↓ lower is better";
  const bars = JUDGED.map((party, k) => bar(g.ratio(r, party), g, y + 9 + k * 18, COLORS[party], party));
  return [
    text(LABEL_X, y + 21, esc(g.figure), `font-size="13" font-weight="600" fill="#1f2328"`),
    // Backticks mark code in the report's table; here they would only show.
    text(LABEL_X, y + 39, esc(`${arrow} · goal ${g.better === "higher" ? "≥" : "≤"} ${g.goal}× · vs ${g.against.replace(/`/g, "")}`), `font-size="11" fill="#57606a"`),
    ...bars.map((b) => b.shape),
    `<line x1="${r1(x(g.goal))}" x2="${r1(x(g.goal))}" y1="${y + 3}" y2="${y + ROW_H - 3}" stroke="#1f2328" stroke-width="2"/>`,
    ...bars.map((b) => b.label),
  ].filter((l) => l !== "");
}

export function renderChart(r: Results): string {
  const height = TOP + GOALS.length * ROW_H + 46;
  const bottom = TOP + GOALS.length * ROW_H;
  const date = r.generated.slice(0, 10);
  const legend = JUDGED.map((p, k) => {
    const lx = LABEL_X + k * 170;
    return `<rect x="${lx}" y="84" width="14" height="14" rx="2" fill="${COLORS[p]}"/>` + text(lx + 20, 96, esc(p), `font-size="12" fill="#1f2328"`);
  });
  const grid = TICKS.map((t) =>
    [
      `<line x1="${r1(x(t))}" x2="${r1(x(t))}" y1="${TOP - 6}" y2="${bottom}" stroke="${t === 1 ? "#8c959f" : "#d0d7de"}" stroke-width="${t === 1 ? 1.5 : 1}"/>`,
      text(x(t), TOP - 12, tick(t), `font-size="11" fill="#57606a" text-anchor="middle"`),
    ].join(""),
  );
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}" role="img" aria-label="switchyard's benchmark ratios against their goals">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    text(LABEL_X, 32, "switchyard against its goals", `font-size="18" font-weight="700" fill="#1f2328"`),
    text(LABEL_X, 54, esc(`${r.workers} workers vs HAProxy nbthread ${r.workers} unless a row says otherwise · ${r.quick ? "make bench-quick" : "make bench"}, ${date} · medians: bench/results.json`), `font-size="12" fill="#57606a"`),
    text(LABEL_X, 72, "Bars start at 1× (parity), log scale. Shaded: where the goal is met; dark line: the goal.", `font-size="12" fill="#57606a"`),
    ...legend,
    `<rect x="${LABEL_X + 340}" y="84" width="22" height="14" fill="#dafbe1"/><line x1="${LABEL_X + 351}" x2="${LABEL_X + 351}" y1="82" y2="100" stroke="#1f2328" stroke-width="2"/>`,
    text(LABEL_X + 370, 96, "goal met on the shaded side", `font-size="12" fill="#1f2328"`),
    text(LABEL_X + 560, 96, `<tspan fill="${GOOD}" font-weight="700">✓</tspan> met  <tspan fill="${BAD}" font-weight="700">✗</tspan> not met`, `font-size="12" fill="#1f2328"`),
    ...GOALS.flatMap((g, i) => rowBack(g, i)),
    ...grid,
    ...GOALS.flatMap((g, i) => rowFront(g, i, r)),
    text(LABEL_X, bottom + 28, "How each ratio is computed: bench/goals.ts; the figures: bench/results.json; every table: bench/RESULTS.md.", `font-size="11" fill="#57606a"`),
    `</svg>`,
    "",
  ]
    .filter((l) => l !== "")
    .join("\n");
}

export function writeChart(file: string, r: Results): void {
  fs.writeFileSync(file, renderChart(r) + "\n");
}
