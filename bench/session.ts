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
}

/** All workloads once against one target (opened and closed here when it is one of ours). */
export async function runTarget(spec: string, label: string, o: SessionOptions): Promise<PhaseResult[]> {
  const target = await openTarget(spec, o.target)
  const out: PhaseResult[] = []
  try {
    const wo: WorkloadOptions = { ...o.workload, label }
    for (const w of o.workloads) {
      let rows: PhaseResult[]
      if (o.driver.kind === 'nfsprobe') {
        rows = await runNfsprobe(o.driver.bin, target.url, w, wo)
      } else {
        // A fresh connection per workload, as nfsprobe makes one per mode.
        const d = await NfsDriver.connect(parseBenchUrl(target.url))
        try {
          rows = await runWorkload(d, w, wo)
        } finally {
          await d.close()
        }
      }
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
