// `switchyard ctl status` for a person: generations and workers, then apps.

interface StatusJson {
  healthy?: boolean;
  pid?: number;
  version?: string;
  startedAt?: string;
  generation?: number | null;
  steering?: { mode: string; bpfOffReason?: string; sockets: number; apps: { name: string; ports: number; steered?: number }[] };
  lastReload?: { ok: boolean; generation?: number; message?: string; at: string; source: string } | null;
  generations?: { number: number; state: string; connections: number; workers: { index: number; pid: number | null; state: string; connections: number | null; accepted?: number | null }[] }[];
  apps?: { name: string; ports: number[]; targets: { target: string; up: boolean; reason?: string }[] }[];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

/** Ports as ranges: [5000,5001,5002,6000] → "5000-5002,6000". */
export function portRanges(ports: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ports.length; ) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1] === ports[j]! + 1) j++;
    out.push(i === j ? `${ports[i]}` : `${ports[i]}-${ports[j]}`);
    i = j + 1;
  }
  return out.join(",");
}

export function formatStatusTable(raw: Record<string, unknown>): string {
  const s = raw as StatusJson;
  const lr = s.lastReload;
  const last = !lr ? "none" : lr.ok ? `ok, generation ${lr.generation} (${lr.source}, ${lr.at})` : `FAILED: ${lr.message} (${lr.source}, ${lr.at})`;
  const steering = s.steering ? `${s.steering.mode}, ${s.steering.sockets} sockets${s.steering.bpfOffReason ? ` (BPF off: ${s.steering.bpfOffReason})` : ""}` : "?";
  let out = `supervisor: pid ${s.pid ?? "?"}, version ${s.version ?? "?"}, started ${s.startedAt ?? "?"}\n`;
  out += `healthy: ${s.healthy ? "yes" : "NO"}   generation: ${s.generation ?? "-"}   steering: ${steering}\nlast reload: ${last}\n\n`;
  const count = (n: number | null | undefined): string => (n === null || n === undefined ? "?" : String(n));
  const workerRows = [["GENERATION", "STATE", "WORKER", "PID", "WORKER STATE", "CONNECTIONS", "ACCEPTED"]];
  for (const g of s.generations ?? []) {
    for (const w of g.workers) workerRows.push([String(g.number), g.state, String(w.index), String(w.pid ?? "-"), w.state, count(w.connections), count(w.accepted)]);
  }
  out += table(workerRows) + "\n";
  const steered = new Map((s.steering?.apps ?? []).map((a) => [a.name, a.steered] as const));
  const appRows = [["APP", "PORTS", "TARGETS", ...(s.steering?.mode === "bpf" ? ["STEERED"] : [])]];
  for (const a of s.apps ?? []) {
    const targets = a.targets.map((t) => `${t.target} (${t.up ? "up" : `DOWN${t.reason ? `: ${t.reason}` : ""}`})`).join(", ");
    appRows.push([a.name, portRanges(a.ports), targets, ...(s.steering?.mode === "bpf" ? [String(steered.get(a.name) ?? 0)] : [])]);
  }
  return out + table(appRows);
}
