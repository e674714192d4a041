// Collects a config's problems with bounded memory: the first MAX_REPORTED_PROBLEMS
// are kept, the rest only counted, so a file of 100,000 bad ports costs a counter,
// not 100,000 objects.

import { ConfigError, MAX_REPORTED_PROBLEMS, type ConfigProblem } from "../common/errors.js";

export class ProblemCollector {
  readonly kept: ConfigProblem[] = [];
  private omitted = 0;
  private atLeast = false;

  add(problem: ConfigProblem): void {
    if (this.kept.length < MAX_REPORTED_PROBLEMS) this.kept.push(problem);
    else this.omitted++;
  }

  /** Problems found but not worth building (beyond the cap anyway). */
  skip(count: number): void {
    if (count > 0) this.omitted += count;
  }

  /** A check stopped early: there may be more problems than were counted. */
  stoppedCounting(): void {
    this.atLeast = true;
  }

  /** Whether another kept problem would only be counted. */
  get full(): boolean {
    return this.kept.length >= MAX_REPORTED_PROBLEMS;
  }

  get count(): number {
    return this.kept.length + this.omitted;
  }

  error(cause?: unknown): ConfigError {
    return new ConfigError(this.kept, { cause, omitted: this.omitted, omittedAtLeast: this.atLeast });
  }
}
