/*
 * A fixed-bucket latency histogram in the Prometheus model: per-bucket
 * counts, a running sum and a count. Observing is a short linear scan over
 * 16 bounds and three additions: cheap enough for every RPC.
 */

/** Upper bounds in seconds, 50 µs … 5 s (a memory-backed GETATTR takes tens of µs, a synced WRITE milliseconds). */
export const LATENCY_BUCKETS_S: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
])

export class Histogram {
  readonly bounds: readonly number[]
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; the last slot is everything above the last bound. */
  readonly counts: number[]
  sum = 0
  count = 0

  constructor(bounds: readonly number[] = LATENCY_BUCKETS_S) {
    this.bounds = bounds
    this.counts = new Array<number>(bounds.length + 1).fill(0)
  }

  observe(value: number): void {
    let i = 0
    while (i < this.bounds.length && value > (this.bounds[i] ?? Infinity)) i++
    this.counts[i] = (this.counts[i] ?? 0) + 1
    this.sum += value
    this.count++
  }

  /** Cumulative counts per bound, then +Inf: what the `_bucket` series carry. */
  cumulative(): number[] {
    const out: number[] = []
    let acc = 0
    for (const c of this.counts) {
      acc += c
      out.push(acc)
    }
    return out
  }
}
