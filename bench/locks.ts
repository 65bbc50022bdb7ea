/*
 * Lock throughput (issue 12 point 6): uncontended LOCK/UNLOCK pairs per
 * second at 32 in flight, our server's NLM against NFS-Ganesha's, through
 * the same driver: nfsprobe's nlm-bench (tools/nfsprobe, libnfs's raw NLM
 * v4 calls on one TCP connection; each slot its own owner, each pair its
 * own range, so nothing ever waits). The targets alternate, the order
 * rotating each run; each gets one untimed warm-up run first. Reports per
 * target the median pairs/s and p50/p99 latency per pair, each run's
 * tsnfs/Ganesha ratio, their median and the ratio of the medians.
 *
 *   npm run build && npx tsx bench/locks.ts [--runs 5] [--pairs 20000] [-K 32]
 *     [--targets tsnfs,ganesha] [--json] [--nfsprobe PATH]
 *
 * tsnfs: `tsnfs serve` from dist/ (a process of its own) with one memory
 * export; NLM is served on its one port. Ganesha: 4.3 with FSAL_VFS on a
 * temporary directory, NLM on a port of its own, rpc.statd beside it
 * (test/helpers/ganesha.ts; needs root and the Debian packages nfs-ganesha,
 * nfs-ganesha-vfs, rpcbind, nfs-common). The caller name is "localhost",
 * which rpc.statd can resolve (Ganesha monitors every caller through it).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { launchGanesha } from '../test/helpers/ganesha.ts'
import type { GaneshaProcess } from '../test/helpers/ganesha.ts'
import { defaultNfsprobe, ensureNfsprobe } from './nfsprobe.ts'
import { runNlmBench } from './nlm-probe.ts'
import type { NlmBenchLine, NlmTarget } from './nlm-probe.ts'
import { median, round } from './results.ts'
import { startServer } from './tree-procs.ts'
import type { ServerProc } from './tree-procs.ts'

const TARGETS = ['tsnfs', 'ganesha'] as const
type TargetName = (typeof TARGETS)[number]

interface Target {
  name: TargetName
  nlm: NlmTarget
  stop(): Promise<void>
}

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    pairs: { type: 'string', default: '20000' },
    K: { type: 'string', short: 'K', default: '32' },
    targets: { type: 'string', default: TARGETS.join(',') },
    json: { type: 'boolean', default: false },
    nfsprobe: { type: 'string' },
  },
})

const runs = Number(args.runs)
const pairs = Number(args.pairs)
const inflight = Number(args.K)
const names = args.targets.split(',').map((s) => s.trim()).filter((s) => s !== '')
for (const n of names) if (!(TARGETS as readonly string[]).includes(n)) throw new Error(`--targets: no target '${n}' (${TARGETS.join(', ')})`)
if (![runs, pairs, inflight].every((x) => Number.isInteger(x) && x > 0)) throw new Error('--runs, --pairs and -K take positive integers')

const work = mkdtempSync(join(tmpdir(), 'tsnfs-bench-locks-'))

async function startTsnfs(): Promise<Target> {
  const dir = join(work, 'tsnfs')
  mkdirSync(join(dir, 'state'), { recursive: true })
  const exportsFile = join(dir, 'exports')
  writeFileSync(exportsFile, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const s: ServerProc = await startServer(exportsFile, join(dir, 'state'))
  const url = `nfs://127.0.0.1/export?nfsport=${String(s.port)}&mountport=${String(s.port)}`
  return { name: 'tsnfs', nlm: { url, nlmPort: s.port, caller: 'localhost' }, stop: () => s.stop() }
}

async function startGanesha(): Promise<Target> {
  const dir = join(work, 'ganesha')
  mkdirSync(join(dir, 'export'), { recursive: true })
  mkdirSync(join(dir, 'state'), { recursive: true })
  const g: GaneshaProcess = await launchGanesha(join(dir, 'export'), join(dir, 'state'), { nlm: true })
  return { name: 'ganesha', nlm: { url: g.g.url(), nlmPort: g.g.nlmPort, caller: 'localhost' }, stop: () => g.stop() }
}

async function once(bin: string, t: Target, n: number, label: string): Promise<NlmBenchLine> {
  const r = await runNlmBench(bin, t.nlm, '/locks-bench', n, inflight, label)
  if (r.line === null || r.exitCode !== 0) {
    throw new Error(`nlm-bench against ${t.name} failed (exit ${String(r.exitCode)}): ${r.line?.first_error ?? ''} ${r.stderr.trim()}`)
  }
  return r.line
}

const fmt = (x: number): string => Math.round(x).toLocaleString('en-US')

async function main(): Promise<void> {
  const bin = args.nfsprobe ?? defaultNfsprobe()
  await ensureNfsprobe(bin)
  const targets: Target[] = []
  try {
    for (const n of names) targets.push(n === 'tsnfs' ? await startTsnfs() : await startGanesha())
    for (const t of targets) await once(bin, t, Math.min(pairs, 5000), 'warm-up')
    const samples = new Map<TargetName, NlmBenchLine[]>(targets.map((t) => [t.name, []]))
    for (let i = 0; i < runs; i++) {
      // Rotate the order, so neither target always runs first after the other.
      const order = targets.map((_, j) => targets[(i + j) % targets.length] as Target)
      for (const t of order) samples.get(t.name)?.push(await once(bin, t, pairs, `run${String(i + 1)}`))
    }
    report(samples)
  } finally {
    for (const t of targets) await t.stop()
    rmSync(work, { recursive: true, force: true })
  }
}

function report(samples: Map<TargetName, NlmBenchLine[]>): void {
  const rows = [...samples].map(([name, xs]) => ({
    target: name,
    runs: xs.map((x) => round(x.pairs_per_s, 0)),
    median_pairs_per_s: round(median(xs.map((x) => x.pairs_per_s)), 0),
    median_p50_us: round(median(xs.map((x) => x.lat_us_p50)), 0),
    median_p99_us: round(median(xs.map((x) => x.lat_us_p99)), 0),
  }))
  const ours = samples.get('tsnfs')
  const theirs = samples.get('ganesha')
  const ratios = ours !== undefined && theirs !== undefined ? ours.map((x, i) => x.pairs_per_s / (theirs[i]?.pairs_per_s ?? NaN)) : []
  const medianOf = (name: string): number => rows.find((r) => r.target === name)?.median_pairs_per_s ?? NaN
  const summary = {
    pairs,
    inflight,
    runs,
    loadavg: loadavg().map((x) => round(x, 2)),
    targets: rows,
    ...(ratios.length > 0
      ? { ratio_runs: ratios.map((r) => round(r, 2)), ratio_median: round(median(ratios), 2), ratio_of_medians: round(medianOf('tsnfs') / medianOf('ganesha'), 2) }
      : {}),
  }
  if (args.json) {
    console.log(JSON.stringify(summary))
    return
  }
  console.log(`LOCK/UNLOCK pairs, ${fmt(pairs)} per run, ${String(inflight)} in flight, ${String(runs)} runs (load ${summary.loadavg.join(' ')})`)
  console.log('target    median pairs/s   p50 µs   p99 µs   runs')
  for (const r of rows) {
    console.log(`${r.target.padEnd(9)} ${fmt(r.median_pairs_per_s).padStart(14)} ${fmt(r.median_p50_us).padStart(8)} ${fmt(r.median_p99_us).padStart(8)}   ${r.runs.map(fmt).join(' ')}`)
  }
  if (ratios.length > 0) {
    console.log(`tsnfs/ganesha: per run ${ratios.map((r) => r.toFixed(2)).join(' ')}; median ${median(ratios).toFixed(2)}; ratio of medians ${(medianOf('tsnfs') / medianOf('ganesha')).toFixed(2)}`)
  }
}

await main()
