/*
 * Several NFS servers in ONE interleaved run (issue 17 §6): the cluster
 * backend (data=postgres and data=s3), the local backend and NFS-Ganesha VFS,
 * each given as NAME=URL. Run i measures every target once, in order, so
 * machine drift (2 shared cores) falls on all of them alike; the table gives
 * per phase the median of each target and the ratio of each median to the
 * first target's.
 *
 *   npx tsx bench/cluster-compare.ts [--runs 3] [--driver nfsprobe|tsnfs] [-N 1000] [-S 32] [-T 3] [--stable both] \
 *     local=nfs://… cluster-pg=nfs://… cluster-s3=nfs://… ganesha-vfs=nfs://… [WORKLOAD…]
 *
 * bench/README.md "Cluster backend" has the commands that start the servers.
 */
import { parseArgs } from 'node:util'
import { defaultNfsprobe } from './nfsprobe.ts'
import { headline, median } from './results.ts'
import type { PhaseResult } from './results.ts'
import { runTarget } from './session.ts'
import type { SessionOptions } from './session.ts'
import { WORKLOADS } from './workloads.ts'
import type { Workload } from './workloads.ts'

function int(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} needs a positive integer, got "${v}"`)
  return n
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return '-'
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2)
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string' },
      N: { type: 'string', short: 'N' },
      S: { type: 'string', short: 'S' },
      T: { type: 'string', short: 'T' },
      K: { type: 'string', short: 'K' },
      stable: { type: 'string', default: 'both' },
      json: { type: 'boolean', default: false },
      driver: { type: 'string', default: 'nfsprobe' },
    },
  })
  const targets: { name: string; url: string }[] = []
  const workloads: Workload[] = []
  for (const p of positionals) {
    const eq = p.indexOf('=')
    if (eq > 0) targets.push({ name: p.slice(0, eq), url: p.slice(eq + 1) })
    else if ((WORKLOADS as readonly string[]).includes(p)) workloads.push(p as Workload)
    else throw new Error(`"${p}" is neither NAME=URL nor a workload (${WORKLOADS.join(', ')})`)
  }
  if (targets.length < 2) throw new Error('give at least two targets as NAME=nfs://…')
  const stable = values.stable
  if (stable !== 'unstable' && stable !== 'filesync' && stable !== 'both') throw new Error(`--stable: unstable, filesync or both, not ${stable}`)
  const runs = int('--runs', values.runs, 3)
  const session: SessionOptions = {
    workloads: workloads.length === 0 ? ['meta', 'seq', 'rand'] : workloads,
    // Issue 17 §6 asks for the libnfs client (tools/nfsprobe), independent of our own.
    driver: values.driver === 'tsnfs' ? { kind: 'tsnfs' } : { kind: 'nfsprobe', bin: defaultNfsprobe() },
    workload: {
      files: int('-N', values.N, 1000),
      smallFiles: 2000,
      inflight: int('-K', values.K, 32),
      sizeMiB: int('-S', values.S, 32),
      reqSize: 1024 * 1024,
      seconds: int('-T', values.T, 3),
      stable,
    },
    target: { process: false },
  }
  const results = new Map<string, PhaseResult[][]>(targets.map((t) => [t.name, []]))
  for (let i = 0; i < runs; i++) {
    for (const t of targets) {
      process.stderr.write(`run ${i + 1}/${runs}: ${t.name}\n`)
      const rows = await runTarget(t.url, t.name, session)
      results.get(t.name)?.push(rows)
      if (values.json) for (const r of rows) process.stdout.write(`${JSON.stringify({ run: i + 1, target: t.name, ...r })}\n`)
    }
  }
  if (values.json) return
  const key = (r: PhaseResult): string => `${r.mode}/${r.phase}`
  const phases: string[] = []
  for (const run of results.get(targets[0]?.name ?? '') ?? []) for (const r of run) if (!phases.includes(key(r))) phases.push(key(r))
  const med = (name: string, p: string): { value: number; unit: string; errors: number } => {
    const rows = (results.get(name) ?? []).map((run) => run.find((x) => key(x) === p)).filter((r): r is PhaseResult => r !== undefined)
    const first = rows[0]
    return { value: median(rows.map((r) => headline(r).value)), unit: first === undefined ? '' : headline(first).unit, errors: rows.reduce((n, r) => n + r.errors, 0) }
  }
  const base = targets[0]?.name ?? ''
  const head = ['phase', 'unit', ...targets.map((t) => t.name), ...targets.slice(1).map((t) => `${base}/${t.name}`), 'errors']
  const rows = phases.map((p) => {
    const m = targets.map((t) => med(t.name, p))
    const b = m[0]?.value ?? NaN
    return [p, m[0]?.unit ?? '', ...m.map((x) => fmt(x.value)), ...m.slice(1).map((x) => (b / x.value).toFixed(2)), String(m.reduce((n, x) => n + x.errors, 0))]
  })
  process.stdout.write(`medians of ${runs} interleaved runs\n| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`)
}

await main()
