// Hashing for source-hash: deterministic, with no per-process seed, so every worker
// of every generation (and after a restart) sends a client to the same target.

/** FNV-1a over the UTF-16 code units (addresses are ASCII): 32 bits, unsigned. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * MurmurHash3's finaliser: every input bit flips each output bit with probability
 * about 1/2. FNV alone leaves addresses that differ in the last digit too alike.
 */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A value in (0, 1) that looks uniform and independent for each (client, target) pair. */
export function unitHash(client: number, target: number): number {
  return (mix32(mix32(client ^ target) + target) + 0.5) / 4294967296;
}
