/* Terminal tables for bench results and comparisons (JSON lines are the rows themselves). */
import { headline, median, round } from './results.ts'
import type { PhaseResult } from './results.ts'

function fmt(x: number): string {
  if (!Number.isFinite(x)) return '-'
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2)
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0))).join('  ')
  return [line(head), ...rows.map(line)].join('\n') + '\n'
}

export function resultsTable(rows: readonly PhaseResult[]): string {
  return table(
    ['target', 'phase', 'value', 'unit', 'ops/s', 'p50 µs', 'p99 µs', 'errors'],
    rows.map((r) => {
      const h = headline(r)
      return [r.label, `${r.mode}/${r.phase}`, fmt(h.value), h.unit, fmt(r.ops_per_s), fmt(r.lat_us_p50), fmt(r.lat_us_p99), String(r.errors)]
    }),
  )
}

/** Per phase: each run's A/B ratio, the median ratio, and the ratio of the medians. */
export interface Comparison {
  phase: string
  unit: string
  a: number[]
  b: number[]
  ratios: number[]
  medianRatio: number
  ratioOfMedians: number
}

export function compareRuns(a: readonly PhaseResult[][], b: readonly PhaseResult[][]): Comparison[] {
  const key = (r: PhaseResult): string => `${r.mode}/${r.phase}`
  const phases: string[] = []
  for (const run of a) for (const r of run) if (!phases.includes(key(r))) phases.push(key(r))
  const pick = (runs: readonly PhaseResult[][], p: string): number[] =>
    runs.map((run) => {
      const r = run.find((x) => key(x) === p)
      return r === undefined ? NaN : headline(r).value
    })
  return phases.map((p) => {
    const av = pick(a, p)
    const bv = pick(b, p)
    const ratios = av.map((x, i) => x / (bv[i] ?? NaN))
    const unitOf = a.flat().find((x) => key(x) === p)
    return {
      phase: p,
      unit: unitOf === undefined ? '' : headline(unitOf).unit,
      a: av,
      b: bv,
      ratios: ratios.map((x) => round(x, 3)),
      medianRatio: round(median(ratios.filter(Number.isFinite)), 3),
      ratioOfMedians: round(median(av.filter(Number.isFinite)) / median(bv.filter(Number.isFinite)), 3),
    }
  })
}

export function comparisonTable(cs: readonly Comparison[], labelA: string, labelB: string): string {
  const head = ['phase', 'unit', `median ${labelA}`, `median ${labelB}`, 'A/B per run', 'median ratio', 'ratio of medians']
  return `A = ${labelA}\nB = ${labelB}\n` + table(
    head,
    cs.map((c) => [c.phase, c.unit, fmt(median(c.a)), fmt(median(c.b)), c.ratios.map((x) => x.toFixed(2)).join(' '), c.medianRatio.toFixed(2), c.ratioOfMedians.toFixed(2)]),
  )
}
