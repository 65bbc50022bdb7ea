/*
 * tsnfs bench: the workloads of bench/ (meta, seq, rand, small, mixed, and
 * micro for the codec and dispatch micro benchmarks) against our server or any
 * NFSv3 server by URL; --compare A B alternates the two targets. A table on
 * stdout, or JSON lines with --json. See bench/README.md.
 */
import { parseArgs } from 'node:util'
import { copyBench, copyTable, findNfsCp, libraryCopy } from '../bench/copy.ts'
import { microBenches } from '../bench/micro.ts'
import { defaultNfsprobe } from '../bench/nfsprobe.ts'
import { comparisonTable, compareRuns, resultsTable } from '../bench/report.ts'
import type { PhaseResult } from '../bench/results.ts'
import { runCompare, runTarget } from '../bench/session.ts'
import type { Driver, SessionOptions } from '../bench/session.ts'
import { WORKLOADS } from '../bench/workloads.ts'
import type { Workload } from '../bench/workloads.ts'
import { readFile } from 'node:fs/promises'

export const BENCH_USAGE = `  bench [WORKLOAD…] [--target T] [--compare A B [--runs N]] [--warmup N] [--driver tsnfs|nfsprobe] [--json]
        [-N files] [-K inflight] [-S MiB] [-R bytes] [-T secs] [--small-files N] [--stable unstable|filesync|both]
        [--process] [--exports FILE] [--local-dir DIR] [--engine-image FILE] [--engine-cache SIZE] [--before-a CMD] [--before-b CMD] [--nfsprobe PATH]
        workloads: ${WORKLOADS.join(' ')} (default: all), micro; a target is tsnfs-memory (default),
        tsnfs-BACKEND, or an nfs://host/export?nfsport=P&mountport=M URL; --warmup N: N unmeasured
        passes of the workloads in each opening of a target before the measured one (default 0)
  bench copy [--target T] [--runs N] [-S MiB] [--no-mount] [--nfs-cp PATH] [--before OTHER/dist/cli/main.js] [--json]
        tsnfs cp against libnfs's nfs-cp both ways, and writes through a tsnfs mount (dd, cp) against
        the library's, alternating, medians and speed ratios (bench/README.md)
`

/** A positive integer; sizes may end in k or m (×1024, ×1024²). */
function int(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback
  const m = /^(\d+)([kKmM]?)$/.exec(v)
  const unit = m?.[2]?.toLowerCase()
  const n = m === null ? NaN : Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name}: not a positive integer: ${v}`)
  return n
}

/** A count that may be 0. */
function count(name: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new Error(`${name}: not a count: ${v}`)
  return Number(v)
}

export async function bench(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      target: { type: 'string', default: 'tsnfs-memory' },
      compare: { type: 'boolean', default: false },
      runs: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '0' },
      driver: { type: 'string', default: 'tsnfs' },
      json: { type: 'boolean', default: false },
      N: { type: 'string', short: 'N' },
      K: { type: 'string', short: 'K' },
      S: { type: 'string', short: 'S' },
      R: { type: 'string', short: 'R' },
      T: { type: 'string', short: 'T' },
      'small-files': { type: 'string' },
      stable: { type: 'string', default: 'both' },
      process: { type: 'boolean', default: false },
      exports: { type: 'string' },
      'local-dir': { type: 'string' },
      'engine-image': { type: 'string' },
      'engine-cache': { type: 'string' },
      'before-a': { type: 'string' },
      'before-b': { type: 'string' },
      nfsprobe: { type: 'string' },
      'no-mount': { type: 'boolean', default: false },
      'nfs-cp': { type: 'string' },
      before: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(`usage: tsnfs ${BENCH_USAGE.trimStart()}`)
    return 0
  }
  const out = (s: string): void => { process.stdout.write(s) }
  let names = positionals
  let compareWith: [string, string] | null = null
  if (values.compare) {
    const [a, b, ...rest] = positionals
    if (a === undefined || b === undefined) throw new Error('--compare needs two targets: --compare A B [WORKLOAD…]')
    compareWith = [a, b]
    names = rest
  }
  if (names[0] === 'copy-lib') {
    // bench copy's library side, run in a process of its own: prints the seconds the copy took and its CPU seconds.
    const [, direction, src, dst] = names
    if ((direction !== 'up' && direction !== 'down') || src === undefined || dst === undefined) throw new Error('usage: bench copy-lib up|down SRC DST')
    const { s: seconds, cpu } = await libraryCopy(direction, src, dst)
    out(`${String(seconds)} ${String(cpu)}\n`)
    return 0
  }
  if (names[0] === 'copy') {
    const nfsCp = values['nfs-cp'] ?? findNfsCp()
    if (nfsCp === null) throw new Error('nfs-cp not found (Debian: apt-get install libnfs-utils), or give --nfs-cp PATH')
    const sizeMiB = int('-S', values.S, 256)
    const rows = await copyBench({
      target: values.target,
      sizeMiB,
      runs: int('--runs', values.runs, 5),
      mount: !values['no-mount'],
      process: true,
      nfsCp,
      ...(values.before === undefined ? {} : { before: values.before }),
      log: (line) => { process.stderr.write(`${line}\n`) },
    })
    out(values.json ? rows.map((r) => `${JSON.stringify({ mode: 'copy', size_mib: sizeMiB, ...r })}\n`).join('') : copyTable(rows, sizeMiB))
    return 0
  }
  if (names.includes('micro')) {
    const rows = await microBenches()
    for (const r of rows) out(values.json ? `${JSON.stringify({ tool: 'tsnfs-bench', mode: 'micro', ...r })}\n` : '')
    if (!values.json) for (const r of rows) out(`${r.name.padEnd(44)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(12)} ops/s  p50 ${r.p50us.toFixed(3)} µs  p99 ${r.p99us.toFixed(3)} µs\n`)
    names = names.filter((n) => n !== 'micro')
    if (names.length === 0) return 0
  }
  const workloads = (names.length === 0 ? [...WORKLOADS] : names) as Workload[]
  for (const w of workloads) if (!(WORKLOADS as readonly string[]).includes(w)) throw new Error(`unknown workload "${w}" (${WORKLOADS.join(', ')}, micro)`)
  const stable = values.stable
  if (stable !== 'unstable' && stable !== 'filesync' && stable !== 'both') throw new Error(`--stable: unstable, filesync or both, not ${stable}`)
  let driver: Driver
  if (values.driver === 'nfsprobe') driver = { kind: 'nfsprobe', bin: values.nfsprobe ?? defaultNfsprobe() }
  else if (values.driver === 'tsnfs') driver = { kind: 'tsnfs' }
  else throw new Error(`--driver: tsnfs or nfsprobe, not ${values.driver}`)

  const session: SessionOptions = {
    workloads,
    driver,
    warmup: count('--warmup', values.warmup),
    workload: {
      files: int('-N', values.N, 10_000),
      smallFiles: int('--small-files', values['small-files'], 2000),
      inflight: int('-K', values.K, 32),
      sizeMiB: int('-S', values.S, 256),
      reqSize: int('-R', values.R, 1024 * 1024),
      seconds: int('-T', values.T, 5),
      stable,
    },
    target: {
      process: values.process,
      ...(values.exports === undefined ? {} : { exportsText: await readFile(values.exports, 'utf8') }),
      ...(values['local-dir'] === undefined ? {} : { localDir: values['local-dir'] }),
      ...(values['engine-image'] === undefined ? {} : { engineImage: values['engine-image'] }),
      ...(values['engine-cache'] === undefined ? {} : { engineCacheBytes: int('--engine-cache', values['engine-cache'], 0) }),
    },
    onResult: (r: PhaseResult) => {
      if (values.json) out(`${JSON.stringify(r)}\n`)
    },
    onWarmup: (r: PhaseResult) => {
      if (values.json) out(`${JSON.stringify({ ...r, warmup: true })}\n`)
    },
  }
  if (compareWith === null) {
    const rows = await runTarget(values.target, values.target, session)
    if (!values.json) out(resultsTable(rows))
    return rows.some((r) => r.errors > 0) ? 1 : 0
  }
  const runs = int('--runs', values.runs, 5)
  const [a, b] = compareWith
  const res = await runCompare(a, b, {
    ...session,
    runs,
    ...(values['before-a'] === undefined ? {} : { beforeA: values['before-a'] }),
    ...(values['before-b'] === undefined ? {} : { beforeB: values['before-b'] }),
  })
  const cs = compareRuns(res.a, res.b)
  if (values.json) for (const c of cs) out(`${JSON.stringify({ tool: 'tsnfs-bench', mode: 'compare', target_a: a, target_b: b, runs, ...c })}\n`)
  else out(comparisonTable(cs, a, b))
  return [...res.a.flat(), ...res.b.flat()].some((r) => r.errors > 0) ? 1 : 0
}
