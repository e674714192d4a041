// Helpers for the steering scenarios: processes that the tests start inside a
// fresh network namespace (`unshare -n`), which print one JSON line and exit.
import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import net from "node:net";

/** Inode of this process's network namespace. */
export const netnsIno = (): number => statSync("/proc/self/ns/net").ino;

/**
 * Refuses to go on unless this process runs in another network namespace than
 * the test runner, which passes its own in SWITCHYARD_HOST_NETNS_INO: BPF is
 * never attached to the machine's namespace.
 */
export function requireIsolatedNetns(): void {
  const host = Number(process.env.SWITCHYARD_HOST_NETNS_INO);
  if (!Number.isInteger(host) || host <= 0) fail("SWITCHYARD_HOST_NETNS_INO not set: run me from the test");
  if (netnsIno() === host) fail("refusing to run in the host's network namespace");
}

/** Prints the result as the one line of stdout and exits 0. */
export function emit(result: unknown): never {
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

export function fail(error: string): never {
  process.stdout.write(JSON.stringify({ error }) + "\n");
  process.exit(1);
}

/** Fails the scenario if it is still running after `ms`. */
export function deadline(ms: number): void {
  setTimeout(() => fail(`scenario still running after ${ms} ms`), ms).unref();
}

/** Connects, reads until the server closes: what it said, or "error:CODE". */
export function dial(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let data = "";
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => (data += d));
    sock.on("end", () => {
      sock.destroy();
      resolve(data);
    });
    sock.on("error", (e: NodeJS.ErrnoException) => resolve(`error:${e.code ?? e.message}`));
  });
}

export const openFds = (): number => readdirSync("/proc/self/fd").length;

/** sk_lookup links attached to the network namespace with this inode, per bpftool. */
export function netnsLinks(ino: number): { id: number; prog_id: number }[] {
  const out = execFileSync("bpftool", ["-j", "link", "show"], { encoding: "utf8" });
  const links = JSON.parse(out === "" ? "[]" : out) as { id: number; prog_id: number; type: string; netns_ino?: number }[];
  return links.filter((l) => l.type === "netns" && l.netns_ino === ino).map(({ id, prog_id }) => ({ id, prog_id }));
}

/** Runs fn and returns the error's code/syscall, or "no error". */
export function errorOf(fn: () => unknown): { code?: string; syscall?: string; message: string } | "no error" {
  try {
    fn();
    return "no error";
  } catch (e) {
    const err = e as { code?: string; syscall?: string; message?: string };
    return { code: err.code, syscall: err.syscall, message: String(err.message) };
  }
}
