// fast-check's side of a WireCase: how bytes are cut, paced, multiplied and ended.
import fc from "fast-check";
import type { WireCase } from "./wire.js";

/**
 * Cases around `data`: mostly one connection writing at once; sometimes cut
 * into pieces with pauses (a slow writer), sometimes many connections at once.
 */
export function wireCase(data: fc.Arbitrary<Buffer>, maxConnections: number): fc.Arbitrary<WireCase> {
  return fc.record({
    data: data.map((b) => b.toString("base64")),
    splits: fc.oneof(
      { weight: 3, arbitrary: fc.constant<number[]>([]) },
      { weight: 2, arbitrary: fc.array(fc.oneof(fc.nat({ max: 64 }), fc.nat({ max: 20_000 })), { maxLength: 24 }) },
      // A slow writer: the first bytes a few at a time.
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }).map((step) => Array.from({ length: 32 }, (_, i) => (i + 1) * step)) },
    ),
    gapMs: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 100 }) }),
    connections: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 2, arbitrary: fc.integer({ min: 2, max: 20 }) }, { weight: 1, arbitrary: fc.integer({ min: 21, max: maxConnections }) }),
    ending: fc.constantFrom("end" as const, "destroy" as const, "hold" as const),
  });
}

/** A stored case as replay() gets it: checked, since it comes from a file. */
export function isWireCase(v: unknown): v is WireCase {
  const c = v as Partial<WireCase> | null;
  return (
    typeof c === "object" && c !== null &&
    typeof c.data === "string" &&
    Array.isArray(c.splits) && c.splits.every((n) => Number.isInteger(n) && n >= 0) &&
    Number.isInteger(c.gapMs) && c.gapMs! >= 0 &&
    Number.isInteger(c.connections) && c.connections! >= 1 && c.connections! <= 2000 &&
    (c.ending === "end" || c.ending === "destroy" || c.ending === "hold")
  );
}

