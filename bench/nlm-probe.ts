/*
 * nfsprobe's lock modes (tools/nfsprobe: libnfs's raw NLM v4 calls) for the
 * lock benchmark and tests: where the server's NLM is, and nlm-bench's JSON
 * line (N uncontended LOCK/UNLOCK pairs, K in flight).
 */
import { execFile } from 'node:child_process'

export interface NlmTarget {
  url: string
  /** The NLM port; without it the probe asks the portmapper at pmapPort (111 by default). */
  nlmPort?: number
  nsmPort?: number
  pmapPort?: number
  /** The NLM caller_name (and NSM my_name) the ops default to. */
  caller?: string
}

export function targetArgs(target: NlmTarget): string[] {
  const a = ['-t', '10000']
  if (target.nlmPort !== undefined) a.push('--nlm-port', String(target.nlmPort))
  if (target.nsmPort !== undefined) a.push('--nsm-port', String(target.nsmPort))
  if (target.pmapPort !== undefined) a.push('--pmap-port', String(target.pmapPort))
  if (target.caller !== undefined) a.push('--caller', target.caller)
  return a
}

export function exitCodeOf(err: unknown): number {
  if (err === null) return 0
  const code = (err as { code?: unknown }).code
  return typeof code === 'number' ? code : -1
}

/** The JSON line of `nfsprobe nlm-bench URL PATH`. */
export interface NlmBenchLine {
  mode: string
  phase: string
  inflight: number
  ops: number
  errors: number
  first_error?: string
  secs: number
  pairs_per_s: number
  lat_us_p50: number
  lat_us_p99: number
  nlm_port: number
  after_test: string
  label: string
}

export function runNlmBench(bin: string, target: NlmTarget, path: string, pairs: number, inflight: number, label = ''): Promise<{ line: NlmBenchLine | null; exitCode: number; stderr: string }> {
  return new Promise((resolve) => {
    const args = [...targetArgs(target), '-N', String(pairs), '-K', String(inflight), '-l', label, 'nlm-bench', target.url, path]
    execFile(bin, args, { timeout: 300_000 }, (err, stdout, stderr) => {
      const json = stdout.split('\n').find((l) => l.startsWith('{'))
      resolve({ line: json === undefined ? null : (JSON.parse(json) as NlmBenchLine), exitCode: exitCodeOf(err), stderr })
    })
  })
}
