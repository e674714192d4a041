/** FNV-1a over a string's UTF-16 units, from `seed`: 32 bits. */
function fnv1a(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * The 48-bit, non-zero key of (app slot, client address) in the shared
 * per-client table (native/counters.c): two 32-bit hashes, 16 + 32 bits of
 * them. Every worker computes the same key for the same client.
 */
export function clientKey(slot: number, address: string): number {
  const text = `${slot}|${address}`;
  const high = fnv1a(text, 0x811c9dc5) & 0xffff;
  const low = fnv1a(text, 0x9e3779b9);
  return high * 2 ** 32 + low || 1;
}
