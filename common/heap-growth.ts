/*
 * How far V8 lets its old generation grow past what the last full collection left live, before
 * the next one. V8's own factor is chosen per collection between 1.1 and 4 (it grows with the
 * ratio of mutator speed to GC speed, so the busier the process the larger): under a high rate
 * of objects that live long enough to be promoted and then die — the entries of bounded caches
 * while a walk of a large tree passes through them — the heap then reserves up to four times
 * what is live. bench/README.md (sessions 33–35) measured the server at 5× its live heap while
 * walking 1,000,000 files: RSS was cache= + 280–445 MiB. V8's `--heap-growing-percent=N` fixes
 * the factor at 1 + N/100 (heap-controller.cc reads the flag at every limit it computes, so
 * setting it once the process runs takes effect at the next collection): the old generation
 * then stays near what is live, for more frequent (concurrent, incremental) marking.
 *
 * common/ is the base: node:* imports only.
 */

let applied = 0

/** Fix V8's heap growing factor at 1 + percent/100 (0: V8's own choice again). */
export function setHeapGrowth(percent: number): void {
  if (!Number.isSafeInteger(percent) || percent < 0) throw new RangeError(`heap growth: not a whole percentage: ${String(percent)}`)
  // Loaded here, not at the top: node:v8 costs every command's start-up (see common/idle.ts).
  const { setFlagsFromString } = process.getBuiltinModule('node:v8')
  // V8 treats 0 as "not set": its own dynamic factor.
  setFlagsFromString(`--heap-growing-percent=${String(percent)}`)
  applied = percent
}

/** The percentage set by setHeapGrowth (0: V8's own factor). */
export function heapGrowth(): number {
  return applied
}
