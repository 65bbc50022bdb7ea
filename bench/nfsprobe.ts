/*
 * The independent client: runs ../shared/tools/nfsprobe (C, Debian's libnfs)
 * in its meta, seq and rand modes against a URL and reads its JSON lines.
 * Build it with
 *   gcc -O2 -o /tmp/nfsprobe ../shared/tools/nfsprobe/nfsprobe.c $(pkg-config --cflags --libs libnfs)
 * and point --nfsprobe (or $NFSPROBE) at it; /tmp/nfsprobe is the default.
 */
import { execFile } from 'node:child_process'
import type { PhaseResult } from './results.ts'
import type { Workload, WorkloadOptions } from './workloads.ts'

export const NFSPROBE_WORKLOADS: ReadonlySet<Workload> = new Set<Workload>(['meta', 'seq', 'rand'])

export function defaultNfsprobe(): string {
  return process.env.NFSPROBE ?? '/tmp/nfsprobe'
}

function argsFor(w: Workload, o: WorkloadOptions, stable: 'unstable' | 'filesync'): string[] {
  const common = ['-K', String(o.inflight), '-l', o.label]
  switch (w) {
    case 'meta': return [...common, '-N', String(o.files), 'meta']
    case 'seq': return [...common, '-S', String(o.sizeMiB), '-R', String(o.reqSize), '--stable', stable, 'seq']
    case 'rand': return [...common, '-S', String(o.sizeMiB), '-T', String(o.seconds), 'rand']
    default: throw new Error(`nfsprobe has no ${w} mode`)
  }
}

function runOnce(bin: string, args: string[]): Promise<PhaseResult[]> {
  return new Promise((ok, fail) => {
    execFile(bin, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const rows: PhaseResult[] = []
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue
        const j = JSON.parse(line) as Record<string, unknown>
        rows.push(fromProbe(j))
      }
      // Exit status 1 means "some phase had errors": the rows say which, so keep them.
      if (rows.length === 0 && err !== null) fail(new Error(`nfsprobe ${args.join(' ')}: ${err.message}\n${stderr}`))
      else ok(rows)
    })
  })
}

function num(j: Record<string, unknown>, k: string): number | undefined {
  const v = j[k]
  return typeof v === 'number' ? v : undefined
}

function fromProbe(j: Record<string, unknown>): PhaseResult {
  const mode = String(j.mode)
  const stable = typeof j.stable === 'string' ? j.stable : undefined
  let phase = String(j.phase)
  if (mode === 'seq' && stable !== undefined && stable !== 'unstable') phase += `-${stable.replace('_', '')}`
  const opt = (k: string): Partial<PhaseResult> => {
    const v = num(j, k)
    return v === undefined ? {} : { [k]: v }
  }
  return {
    tool: 'nfsprobe',
    mode,
    phase,
    label: typeof j.label === 'string' ? j.label : '',
    inflight: num(j, 'inflight') ?? 0,
    ops: num(j, 'ops') ?? 0,
    errors: num(j, 'errors') ?? 0,
    ...(typeof j.first_error === 'string' ? { first_error: j.first_error } : {}),
    secs: num(j, 'secs') ?? 0,
    ops_per_s: num(j, 'ops_per_s') ?? 0,
    lat_us_p50: num(j, 'lat_us_p50') ?? 0,
    lat_us_p99: num(j, 'lat_us_p99') ?? 0,
    ...opt('bytes'),
    ...(mode === 'meta' && phase !== 'readdirplus' ? {} : opt('mib_per_s')),
    ...opt('entries_per_s'),
    ...opt('req_size'),
    ...(stable === undefined ? {} : { stable }),
  }
}

/** One workload through nfsprobe (seq once per stability variant asked for). */
export async function runNfsprobe(bin: string, url: string, w: Workload, o: WorkloadOptions): Promise<PhaseResult[]> {
  if (!NFSPROBE_WORKLOADS.has(w)) return []
  const variants = w === 'seq' ? (o.stable === 'both' ? (['unstable', 'filesync'] as const) : [o.stable]) : (['unstable'] as const)
  const out: PhaseResult[] = []
  for (const s of variants) out.push(...(await runOnce(bin, [...argsFor(w, o, s), url])))
  return out
}
