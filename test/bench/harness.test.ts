import t from 'tap'
import { statSync } from 'node:fs'
import { compareRuns } from '../../bench/report.ts'
import { Latencies, headline, median } from '../../bench/results.ts'
import type { PhaseResult } from '../../bench/results.ts'
import { runTarget } from '../../bench/session.ts'
import type { SessionOptions } from '../../bench/session.ts'

// Shapes only: benchmarks are not tests, so nothing here looks at a timing.
const options = (workloads: SessionOptions['workloads']): SessionOptions => ({
  workloads,
  driver: { kind: 'tsnfs' },
  workload: { files: 20, smallFiles: 20, inflight: 4, sizeMiB: 2, reqSize: 256 * 1024, seconds: 1, stable: 'both' },
  target: { process: false },
})

t.test('meta and seq against an in-process server report every phase without errors', async (t) => {
  const rows = await runTarget('tsnfs-memory', 'mem', options(['meta', 'seq']))
  t.strictSame(rows.map((r) => `${r.mode}/${r.phase}`), [
    'meta/create', 'meta/getattr', 'meta/lookup', 'meta/readdirplus', 'meta/remove',
    'seq/write', 'seq/read', 'seq/write-filesync', 'seq/read-filesync',
  ])
  for (const r of rows) {
    t.equal(r.tool, 'tsnfs-bench')
    t.equal(r.label, 'mem')
    t.equal(r.errors, 0, `${r.phase}: ${r.first_error ?? ''}`)
    t.type(r.ops_per_s, 'number')
    t.type(r.lat_us_p50, 'number')
    t.type(r.lat_us_p99, 'number')
    t.ok(r.lat_us_p99 >= r.lat_us_p50)
  }
  const byPhase = new Map(rows.map((r) => [`${r.mode}/${r.phase}`, r]))
  t.equal(byPhase.get('meta/create')?.ops, 20)
  t.equal(byPhase.get('meta/remove')?.ops, 20)
  t.equal(byPhase.get('meta/readdirplus')?.inflight, 1)
  t.equal(headline(byPhase.get('meta/readdirplus') as PhaseResult).unit, 'entries/s')
  const write = byPhase.get('seq/write') as PhaseResult
  t.equal(write.bytes, 2 * 1024 * 1024)
  t.equal(write.ops, 8, '2 MiB in 256 KiB requests')
  t.equal(write.stable, 'unstable')
  t.equal(headline(write).unit, 'MiB/s')
  t.same(JSON.parse(JSON.stringify(write)), write, 'a result is one JSON line')
})

t.test('--warmup runs each workload unmeasured first, in the same opening, and returns only the measured pass', async (t) => {
  const warm: string[] = []
  const measured: string[] = []
  const rows = await runTarget('tsnfs-memory', 'mem', {
    ...options(['meta']),
    warmup: 2,
    onWarmup: (r) => { warm.push(`${r.phase}:${r.errors}`) },
    onResult: (r) => { measured.push(r.phase) },
  })
  const phases = ['create', 'getattr', 'lookup', 'readdirplus', 'remove']
  t.strictSame(warm, [...phases, ...phases].map((p) => `${p}:0`))
  t.strictSame(measured, phases)
  t.strictSame(rows.map((r) => r.phase), phases)
  for (const r of rows) t.equal(r.errors, 0, `${r.phase}: ${r.first_error ?? ''}`)
})

t.test('a warm-up pass with errors stops the run, naming the phase', async (t) => {
  // An image of 8 MiB has 2,048 inodes: 3,000 CREATEs run out of them and answer NOSPC (28).
  const image = `${t.testdir()}/tiny.img`
  const o = { ...options(['meta']), warmup: 1 }
  const run = runTarget('tsnfs-engine', 'eng', { ...o, workload: { ...o.workload, files: 3000, inflight: 8 }, target: { process: false, engineImage: image, engineImageBytes: 8 * 2 ** 20 } })
  await t.rejects(run, /^warm-up meta\/create against eng: \d+ errors \(CREATE: NFS status 28\)$/)
})

t.test('small and mixed run and clean up', async (t) => {
  const rows = await runTarget('tsnfs-memory', 'x', options(['small', 'mixed']))
  t.strictSame(rows.map((r) => r.phase), ['write', 'read', 'mixed'])
  for (const r of rows) t.equal(r.errors, 0, `${r.phase}: ${r.first_error ?? ''}`)
  t.equal(rows[0]?.ops, 20)
})

t.test('compareRuns gives per-run ratios and their median', async (t) => {
  const row = (v: number): PhaseResult => ({ tool: 'nfsprobe', mode: 'meta', phase: 'getattr', label: '', inflight: 1, ops: 1, errors: 0, secs: 1, ops_per_s: v, lat_us_p50: 1, lat_us_p99: 1 })
  const [c] = compareRuns([[row(10)], [row(30)], [row(20)]], [[row(5)], [row(10)], [row(20)]])
  t.equal(c?.phase, 'meta/getattr')
  t.strictSame(c?.ratios, [2, 3, 1])
  t.equal(c?.medianRatio, 2)
  t.equal(c?.ratioOfMedians, 2)
  t.equal(median([3, 1, 2, 4]), 2.5)
  const l = new Latencies(1)
  for (let i = 100; i >= 1; i--) l.add(i)
  t.equal(l.percentile(0.5), 50)
  t.equal(l.percentile(0.99), 99)
})

t.test('the engine target serves a fresh image made by our mkfs, meta and seq without errors', async (t) => {
  const image = `${t.testdir()}/engine.img`
  const o = options(['meta', 'seq'])
  const run = (): Promise<PhaseResult[]> => runTarget('tsnfs-engine', 'eng', { ...o, target: { process: false, engineImage: image, engineImageBytes: 64 * 2 ** 20 } })
  for (const pass of [1, 2]) {
    const rows = await run()
    t.equal(rows.length, 9, `pass ${pass}: every phase`)
    for (const r of rows) t.equal(r.errors, 0, `pass ${pass} ${r.mode}/${r.phase}: ${r.first_error ?? ''}`)
    t.equal(rows.find((r) => r.phase === 'create')?.ops, 20, `pass ${pass}: 20 creates`)
  }
  t.equal(statSync(image).size, 64 * 2 ** 20, 'the image has the size asked for')
})

t.test('an unknown target is refused', async (t) => {
  await t.rejects(runTarget('ganesha', 'x', options(['meta'])), /unknown target/)
})
