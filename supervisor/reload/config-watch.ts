import path from "node:path";
import { constants } from "node:fs";
import fs from "node:fs/promises";
import { createHash } from "node:crypto";
import chokidar, { type FSWatcher } from "chokidar";
import type { Logger } from "../../common/log.js";

/** Quiet time after the last relevant event before the file is read. */
const DEBOUNCE_MS = 150;
/** However long a burst of relevant events lasts, the file is read this long after its first event. */
const MAX_DELAY_MS = 1000;
/** A Kubernetes ConfigMap volume swaps this symlink to replace every file at once. */
const CONFIGMAP_DATA_LINK = "..data";

async function contentHash(file: string): Promise<string | undefined> {
  try {
    // A FIFO (or anything but a file) is never read: opening one would wait for a
    // writer. The reload reports what is wrong with it; here it has no content.
    const handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!(await handle.stat()).isFile()) return undefined;
      return createHash("sha256").update(await handle.readFile()).digest("hex");
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}

/**
 * Watches the config file's directory rather than the file: an editor's save
 * by rename and a ConfigMap's swap of the `..data` symlink replace the file,
 * and a watch on the old inode would miss them. Only the names that can change
 * what the config path resolves to count (its own, `..data`): the directory
 * may hold an access log or another program's files written many times a
 * second. A burst of events is debounced, but never past MAX_DELAY_MS from its
 * first event, and a reload is asked for only when the content really
 * changed, so one save or one swap gives exactly one reload.
 */
export class ConfigWatch {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** When the first event of the burst being debounced came. */
  private burstStart: number | undefined;
  private lastHash: string | undefined;
  /** The content the last reload (or the start) read. */
  private readHash: string | undefined;

  constructor(private readonly file: string, private readonly onChange: () => void, private readonly log: Logger) {}

  async start(): Promise<void> {
    this.lastHash = await contentHash(this.file);
    this.readHash = this.lastHash;
    const file = path.resolve(this.file);
    const dir = path.dirname(file);
    const relevant = new Set([path.basename(file), CONFIGMAP_DATA_LINK]);
    // Ignored names are never stat'ed nor reported: a busy neighbour costs the watch nothing.
    const ignored = (p: string): boolean => path.dirname(p) === dir && !relevant.has(path.basename(p));
    this.watcher = chokidar.watch(dir, { depth: 0, ignoreInitial: true, followSymlinks: false, atomic: false, ignored });
    this.watcher.on("all", (_event, p) => {
      if (!ignored(p) && p !== dir) this.schedule();
    });
    this.watcher.on("error", (err) => this.log.warn({ event: "config_watch_error", err }));
    await new Promise<void>((resolve) => this.watcher!.once("ready", () => resolve()));
  }

  /**
   * Await before any reload reads the file: what it reads is then this content
   * or newer, so the watch need not ask for it again (a save followed by a
   * SIGHUP is one reload). Done after the reload instead, it would take in a
   * save made during the reload that the reload never read, and lose it.
   * Resolves whether the content differs from what the previous reload read.
   */
  async remember(): Promise<boolean> {
    const hash = await contentHash(this.file);
    // A file that cannot be read counts as changed: the reload will say what is wrong.
    const changed = hash === undefined || hash !== this.readHash;
    this.lastHash = hash;
    this.readHash = hash;
    return changed;
  }

  private schedule(): void {
    const now = Date.now();
    this.burstStart ??= now;
    clearTimeout(this.timer);
    const due = Math.min(now + DEBOUNCE_MS, this.burstStart + MAX_DELAY_MS);
    this.timer = setTimeout(() => {
      this.burstStart = undefined;
      void this.check();
    }, due - now);
  }

  private async check(): Promise<void> {
    const hash = await contentHash(this.file);
    if (hash === undefined || hash === this.lastHash) return;
    this.lastHash = hash;
    this.log.info({ event: "config_changed", file: this.file });
    this.onChange();
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    await this.watcher?.close();
  }
}
