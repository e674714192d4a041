// `make chaos`: prints the rows the chaos scenarios appended (helpers/chaos.ts)
// as one markdown table. Usage: node dist/test/helpers/chaos-table.js RESULTS.jsonl
import fs from "node:fs";
import type { ChaosRow } from "./chaos.js";

const file = process.argv[2];
if (!file) {
  console.error("usage: chaos-table RESULTS.jsonl");
  process.exit(2);
}
let text = "";
try {
  text = fs.readFileSync(file, "utf8");
} catch {
  // No scenario got as far as its report: an empty table says so.
}
const rows = text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as ChaosRow);
rows.sort((a, b) => a.fault.localeCompare(b.fault));
const what = (r: ChaosRow): string => Object.entries(r.whatFailed).map(([code, n]) => `${code} ${n}`).join(", ") || "-";
console.log("| fault | attempted | failed | what failed | touched by the fault |");
console.log("| --- | ---: | ---: | --- | --- |");
for (const r of rows) console.log(`| ${r.fault} | ${r.attempted} | ${r.failed} | ${what(r)} | ${r.touched} |`);
if (rows.length === 0) console.log("| (no results) | | | | |");
