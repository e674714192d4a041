// What every fuzz target offers to `make fuzz` (fuzz/main.ts) and to the
// regression replay in `make test` (test/fuzz-regressions.test.ts).
//
// A target explores its input space for a bounded time and returns the
// failing inputs it found, each as a JSON value that replay() accepts again;
// main.ts stores each under fuzz/regressions/<target>/, and the test suite
// replays every stored case forever after.

export interface FuzzFailure {
  /** The input that failed, JSON-serialisable (bytes as base64 strings), exactly as replay() takes it. */
  input: unknown;
  /** What went wrong: the thrown error's message, a hang, a crash of the process under test. */
  reason: string;
}

export interface FuzzReport {
  /** Inputs tried. */
  runs: number;
  failures: FuzzFailure[];
}

export interface FuzzTarget {
  /** Directory name under fuzz/regressions/ and the name `make fuzz TARGET=` takes. */
  name: string;
  /** One line: the input and the property checked. */
  description: string;
  /** Explores for about `timeLimitMs`; never longer than twice that. */
  run(opts: { timeLimitMs: number; seed?: number }): Promise<FuzzReport>;
  /** Checks one stored input; rejects, with the reason, if the property fails. */
  replay(input: unknown): Promise<void>;
}
