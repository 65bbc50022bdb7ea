/**
 * mulberry32: the one small seeded generator the tests share, so a printed seed replays a run and
 * every helper built on it draws the same sequence. Numbers in [0, 1) with 32 bits each: `r() *
 * 2 ** 32` is the raw 32-bit output exactly (a division by a power of two loses nothing).
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

/** The raw 32-bit outputs of `prng(seed)`. */
export function prngU32(seed: number): () => number {
  const next = prng(seed)
  return () => next() * 2 ** 32
}
