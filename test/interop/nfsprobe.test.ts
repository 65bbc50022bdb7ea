/*
 * Our libnfs probe (tools/nfsprobe, C on Debian's libnfs) against the
 * embedded memory export: every conform check (mount, every procedure,
 * READDIR paging, rename, links, exclusive create, UNSTABLE WRITEs +
 * COMMIT ...) must pass. Built here from the checkout's sources, so a bare
 * clone needs only gcc, pkg-config and libnfs-dev (installed by .ci/run).
 * The benchmark driver (bench/nfsprobe.ts) reads the probe's JSON lines.
 */
import t from 'tap'
import { runNfsprobe } from '../../bench/nfsprobe.ts'
import type { PhaseResult } from '../../bench/results.ts'
import type { WorkloadOptions } from '../../bench/workloads.ts'
import { startServer } from '../helpers/server.ts'
import { buildProbe, checkReport, CONFORM_CHECKS, runConform } from './conform.ts'

const bin = await buildProbe(t)

t.test('nfsprobe conform passes every check against the embedded export', async (t) => {
  const s = await startServer(t)
  const r = await runConform(bin, s.url('/export'))
  t.strictSame(r.failLines, [], 'no check failed')
  t.strictSame(r.passed, [...CONFORM_CHECKS], 'every check ran and passed, in order')
  checkReport(t, r)
})

t.test('nfsprobe conform reports an export it cannot mount as one failed check', async (t) => {
  const s = await startServer(t)
  const r = await runConform(bin, s.url('/no-such-export'))
  t.strictSame(r.passed, [])
  t.strictSame(r.failed, ['mount'])
  t.match(r.failLines[0] ?? '', /^FAIL mount .*no-such-export/)
  checkReport(t, r)
})

t.test('the bench driver reads every phase of meta, seq and rand from nfsprobe', async (t) => {
  const s = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const url = s.url('/export')
  const o: WorkloadOptions = { label: 'probe-test', files: 300, smallFiles: 0, inflight: 8, sizeMiB: 4, reqSize: 262144, seconds: 1, stable: 'both' }
  const rows = [
    ...(await runNfsprobe(bin, url, 'meta', o)),
    ...(await runNfsprobe(bin, url, 'seq', o)),
    ...(await runNfsprobe(bin, url, 'rand', o)),
  ]
  t.strictSame(
    rows.map((r) => `${r.mode}/${r.phase}`),
    ['meta/create', 'meta/getattr', 'meta/lookup', 'meta/readdirplus', 'meta/remove', 'seq/write', 'seq/read', 'seq/write-filesync', 'seq/read-filesync', 'rand/randread'],
  )
  for (const r of rows) {
    t.equal(r.tool, 'nfsprobe')
    t.equal(r.label, 'probe-test')
    t.equal(r.errors, 0, `${r.mode}/${r.phase}: no errors ${r.first_error ?? ''}`)
    t.ok(r.ops > 0 && r.secs > 0 && r.ops_per_s > 0, `${r.mode}/${r.phase}: ops, time and rate`)
  }
  const by = (phase: string): PhaseResult | undefined => rows.find((r) => `${r.mode}/${r.phase}` === phase)
  for (const p of ['meta/create', 'meta/getattr', 'meta/lookup', 'meta/remove']) t.equal(by(p)?.ops, 300, `${p}: one op per file`)
  t.ok((by('meta/readdirplus')?.entries_per_s ?? 0) > 0, 'readdirplus has entries/s')
  for (const p of ['seq/write', 'seq/read', 'seq/write-filesync', 'seq/read-filesync']) {
    t.equal(by(p)?.bytes, 4 * 1024 * 1024, `${p}: 4 MiB`)
    t.equal(by(p)?.req_size, 262144)
    t.equal(by(p)?.ops, 16, `${p}: 16 requests of 256 KiB`)
  }
  t.equal(by('seq/write')?.stable, 'unstable')
  t.equal(by('seq/write-filesync')?.stable, 'filesync')
  t.equal(by('rand/randread')?.req_size, 4096)
  t.equal(by('rand/randread')?.bytes, (by('rand/randread')?.ops ?? 0) * 4096)
})
