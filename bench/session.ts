/*
 * One bench session: the chosen workloads against one target, or, for a
 * comparison, A, B, A, B … so that machine drift cancels out in the ratios.
 */
import { execSync } from 'node:child_process'
import { NfsDriver, parseBenchUrl } from './nfs-driver.ts'
import { runNfsprobe } from './nfsprobe.ts'
import type { PhaseResult } from './results.ts'
import { openTarget } from './targets.ts'
import type { TargetOptions } from './targets.ts'
import { runWorkload } from './workloads.ts'
import type { Workload, WorkloadOptions } from './workloads.ts'

export type Driver = { kind: 'tsnfs' } | { kind: 'nfsprobe'; bin: string }

export interface SessionOptions {
  workloads: readonly Workload[]
  workload: Omit<WorkloadOptions, 'label'>
  driver: Driver
  target: TargetOptions
  /** Called with each phase's result as soon as it is known. */
  onResult?: (r: PhaseResult) => void
  /**
   * Unmeasured passes of each workload before the measured one, in the same opening of the
   * target: a server that has just started (ours compiles its hot paths as they first run)
   * is measured in its steady state, as it serves for days. Default 0: the first pass counts.
   */
  warmup?: number
  /** Called with each warm-up phase's result (not part of what runTarget returns). */
  onWarmup?: (r: PhaseResult) => void
}

/** All workloads once against one target (opened and closed here when it is one of ours). */
export async function runTarget(spec: string, label: string, o: SessionOptions): Promise<PhaseResult[]> {
  const target = await openTarget(spec, o.target)
  const out: PhaseResult[] = []
  try {
    const wo: WorkloadOptions = { ...o.workload, label }
    for (let i = 0; i < (o.warmup ?? 0); i++) {
      for (const w of o.workloads) {
        const rows = await runOnce(o.driver, target.url, w, wo)
        for (const r of rows) o.onWarmup?.(r)
        // A failed warm-up would hide a broken target behind the measured pass's figures.
        const bad = rows.find((r) => r.errors > 0)
        if (bad !== undefined) throw new Error(`warm-up ${w}/${bad.phase} against ${label}: ${bad.errors} errors${bad.first_error === undefined ? '' : ` (${bad.first_error})`}`)
      }
    }
    for (const w of o.workloads) {
      const rows = await runOnce(o.driver, target.url, w, wo)
      for (const r of rows) {
        o.onResult?.(r)
        out.push(r)
      }
    }
  } finally {
    await target.close()
  }
  return out
}

/** One pass of workload `w` against `url` with the chosen driver. */
async function runOnce(driver: Driver, url: string, w: Workload, wo: WorkloadOptions): Promise<PhaseResult[]> {
  if (driver.kind === 'nfsprobe') return runNfsprobe(driver.bin, url, w, wo)
  // A fresh connection per workload, as nfsprobe makes one per mode.
  const d = await NfsDriver.connect(parseBenchUrl(url))
  try {
    return await runWorkload(d, w, wo)
  } finally {
    await d.close()
  }
}

export interface CompareOptions extends SessionOptions {
  runs: number
  /** Shell commands run before each run of A / of B (e.g. restarting Ganesha MEM, whose heap only grows). */
  beforeA?: string
  beforeB?: string
}

export async function runCompare(a: string, b: string, o: CompareOptions): Promise<{ a: PhaseResult[][]; b: PhaseResult[][] }> {
  const ra: PhaseResult[][] = []
  const rb: PhaseResult[][] = []
  for (let i = 0; i < o.runs; i++) {
    if (o.beforeA !== undefined) execSync(o.beforeA, { stdio: ['ignore', 'ignore', 'inherit'] })
    ra.push(await runTarget(a, 'A', o))
    if (o.beforeB !== undefined) execSync(o.beforeB, { stdio: ['ignore', 'ignore', 'inherit'] })
    rb.push(await runTarget(b, 'B', o))
  }
  return { a: ra, b: rb }
}
