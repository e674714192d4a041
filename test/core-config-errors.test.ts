// Invalid configs through the real CLI: `check` exits 1 naming the path of each
// problem, `run` refuses to start and says why, a valid example passes.
import test from "ava";
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { cli, repoRoot, runCli, tempDir } from "./helpers/supervisor.js";

const dir = tempDir("switchyard-core-config-");
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, text: string): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, text);
  return file;
}

const app = (name: string, ports: unknown[], targets: unknown[] = ["127.0.0.1:6001"]) => ({ Name: name, Ports: ports, Targets: targets });

// name → [file content, the stderr line it must produce]
const cases: Record<string, [string, RegExp]> = {
  "invalid JSON": ['{\n  "Apps": [\n    {"Name": "a",, "Ports": [1]}\n  ]\n}\n', /invalid JSON at line 3, column 18\b/],
  "missing Apps": ["{}", /^Apps: is required$/m],
  "port out of range": [JSON.stringify({ Apps: [app("a", [5001, 70000])] }), /^Apps\[0\]\.Ports\[1\]: must be 1-65535$/m],
  "duplicate app name": [JSON.stringify({ Apps: [app("a", [5001]), app("a", [5002])] }), /^Apps\[1\]\.Name: duplicate app name "a"/m],
  "same port in two apps": [JSON.stringify({ Apps: [app("a", [5001]), app("b", [5002, 5001])] }), /^Apps\[1\]\.Ports\[1\]: port 5001 is used by both app "a" \(Apps\[0\]\) and app "b" \(Apps\[1\]\)/m],
  "target without port": [JSON.stringify({ Apps: [app("a", [5001], ["127.0.0.1:6001", "127.0.0.1"])] }), /^Apps\[0\]\.Targets\[1\]: target "127\.0\.0\.1": missing port/m],
};

for (const [name, [text, expected]] of Object.entries(cases)) {
  test(`check: ${name} → exit 1, the problem named on stderr`, async (t) => {
    const file = configFile(name.replace(/\W+/g, "-"), text);
    const r = await runCli(["check", "--config", file]);
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, expected);
    t.is(r.stdout, "");
  });
}

test("check: several problems → one line each", async (t) => {
  const file = configFile("several", JSON.stringify({ Apps: [app("a", [0]), app("b", [5001], ["nohost"])] }));
  const r = await runCli(["check", "--config", file]);
  t.is(r.code, 1);
  const lines = r.stderr.trim().split("\n");
  t.is(lines.length, 2, r.stderr);
  t.regex(lines[0]!, /^Apps\[0\]\.Ports\[0\]: must be 1-65535$/);
  t.regex(lines[1]!, /^Apps\[1\]\.Targets\[0\]: /);
});

test("run: an invalid config exits non-zero before serving, the problem on stderr", async (t) => {
  const file = configFile("run-invalid", JSON.stringify({ Apps: [app("a", [70000])] }));
  const runtimeDir = path.join(dir, "run");
  const r = await runCli(["run", "--config", file, "--admin", "127.0.0.1:0", "--runtime-dir", runtimeDir, "--steering", "ports", "--workers", "1"]);
  t.not(r.code, 0);
  t.regex(r.stderr, /^Apps\[0\]\.Ports\[0\]: must be 1-65535$/m);
  const events = r.stdout.split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { event?: string }).event);
  t.false(events.includes("supervisor_ready"));
  t.false(events.includes("generation_starting"));
});

test("check: config/examples/default.json is valid", async (t) => {
  const r = await runCli(["check", "--config", path.join(repoRoot, "config/examples/default.json")]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, "");
  t.regex(r.stdout, /ok \(2 apps, 13 ports\)/);
});

test("--help lists every option of the README's command line, on stdout, exit 0", async (t) => {
  const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8");
  const block = readme.slice(readme.indexOf("## Command line")).split("```")[1]!;
  const documented = [...new Set(block.match(/--[a-z-]+/g))];
  t.true(documented.length >= 10, documented.join(" "));
  for (const args of [["run", "--help"], ["--help"]]) {
    const r = await runCli(args);
    t.is(r.code, 0, r.stderr);
    for (const option of documented) t.true(r.stdout.includes(option), `${args.join(" ")}: ${option} missing from\n${r.stdout}`);
  }
});

/** Runs a shell pipeline to completion: "close", so every byte of the pipe is in. */
async function shell(script: string): Promise<{ code: number | null; stdout: string }> {
  const child = spawn("sh", ["-c", script], { stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout };
}

// About 600 KB of problems: more than a pipe holds, so the CLI must wait for the
// reader before exiting (it used to exit with most of it still queued).
const longLines = JSON.stringify({ Apps: [app("a", Array.from({ length: 150 }, (_, i) => `${"x".repeat(6000)}${i}`))] });

test("check: through a pipe, every line arrives; problems past the first 100 are counted", async (t) => {
  const file = configFile("long-lines", longLines);
  const r = await shell(`"${process.execPath}" "${cli}" check --config "${file}" 2>&1 | cat`);
  t.is(r.code, 0);
  const lines = r.stdout.split("\n");
  t.is(lines.pop(), "");
  t.is(lines.length, 101);
  lines.slice(0, 100).forEach((line, i) => t.true(line.startsWith(`Apps[0].Ports[${i}]: must be an integer port`), line.slice(0, 80)));
  t.is(lines[100], "... and 50 more problems");
});

test("run: an invalid config's problems are capped on stderr and in the config_invalid line", async (t) => {
  const file = configFile("run-many", JSON.stringify({ Apps: [app("a", new Array(250).fill(0))] }));
  const runtimeDir = path.join(dir, "run-many");
  const r = await runCli(["run", "--config", file, "--admin", "127.0.0.1:0", "--runtime-dir", runtimeDir, "--steering", "ports", "--workers", "1"]);
  t.is(r.code, 1);
  const lines = r.stderr.trim().split("\n");
  t.is(lines.length, 101, r.stderr.slice(0, 500));
  t.is(lines[100], "... and 150 more problems");
  const invalid = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { event?: string; problems?: unknown[] }).find((l) => l.event === "config_invalid");
  t.is(invalid?.problems?.length, 101);
});
