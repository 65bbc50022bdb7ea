/*
 * One result per workload phase, with the field names of nfsprobe's JSON
 * lines (so both drivers' output reads the same), plus the latency recorder
 * and the pipelined runners the workloads share.
 */

export interface PhaseResult {
  tool: 'tsnfs-bench' | 'nfsprobe'
  mode: string
  phase: string
  label: string
  inflight: number
  ops: number
  errors: number
  first_error?: string
  secs: number
  ops_per_s: number
  lat_us_p50: number
  lat_us_p99: number
  bytes?: number
  mib_per_s?: number
  entries_per_s?: number
  req_size?: number
  stable?: string
}

export type Unit = 'MiB/s' | 'entries/s' | 'ops/s'

/** The figure a phase is judged by: MiB/s for data phases, entries/s for READDIRPLUS, else ops/s. */
export function headline(r: PhaseResult): { value: number; unit: Unit } {
  if (r.mib_per_s !== undefined) return { value: r.mib_per_s, unit: 'MiB/s' }
  if (r.entries_per_s !== undefined) return { value: r.entries_per_s, unit: 'entries/s' }
  return { value: r.ops_per_s, unit: 'ops/s' }
}

/** Latencies of one phase in µs. */
export class Latencies {
  private values: Float64Array
  private n = 0

  constructor(expected = 1024) {
    this.values = new Float64Array(Math.max(16, expected))
  }

  add(us: number): void {
    if (this.n === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2)
      bigger.set(this.values)
      this.values = bigger
    }
    this.values[this.n++] = us
  }

  get count(): number {
    return this.n
  }

  /** Nearest-rank percentile (p in 0..1); 0 when nothing was recorded. */
  percentile(p: number): number {
    if (this.n === 0) return 0
    const sorted = this.values.slice(0, this.n).sort()
    return sorted[Math.min(this.n - 1, Math.max(0, Math.ceil(p * this.n) - 1))] ?? 0
  }
}

export interface RunOutcome {
  secs: number
  ops: number
  errors: number
  firstError?: string
  lat: Latencies
}

/**
 * Runs op(0) … op(n-1) with k in flight (k workers each taking the next
 * index), or, with `untilMs`, keeps going until that much time has passed.
 * A failed op counts as an error and the run continues; `stop` ends it early.
 */
export async function pipelined(
  k: number,
  op: (i: number) => Promise<unknown>,
  n: number,
  untilMs?: number,
  stop?: () => boolean,
): Promise<RunOutcome> {
  const lat = new Latencies(Math.min(n, 1 << 16))
  let next = 0
  let errors = 0
  let firstError: string | undefined
  const start = performance.now()
  const deadline = untilMs === undefined ? Infinity : start + untilMs
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++
      if (i >= n) return
      const t0 = performance.now()
      if (t0 >= deadline || stop?.() === true) return
      try {
        await op(i)
      } catch (err) {
        errors++
        firstError ??= err instanceof Error ? err.message : String(err)
      }
      lat.add((performance.now() - t0) * 1000)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(k, n)) }, worker))
  const secs = (performance.now() - start) / 1000
  return { secs, ops: lat.count, errors, ...(firstError === undefined ? {} : { firstError }), lat }
}

export function phaseResult(mode: string, phase: string, label: string, k: number, o: RunOutcome, extra: Partial<PhaseResult> = {}): PhaseResult {
  return {
    tool: 'tsnfs-bench',
    mode,
    phase,
    label,
    inflight: k,
    ops: o.ops,
    errors: o.errors,
    ...(o.firstError === undefined ? {} : { first_error: o.firstError }),
    secs: round(o.secs, 4),
    ops_per_s: round(o.ops / o.secs, 1),
    lat_us_p50: round(o.lat.percentile(0.5), 1),
    lat_us_p99: round(o.lat.percentile(0.99), 1),
    ...extra,
  }
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2
}
