/*
 * tsnfs backup verify: a backup made over NDMP by our manager (our server as data and tape agent,
 * a memory export) is reread from the pool's tape file and every file checked against the
 * SHA-256 recorded at backup time. One flipped byte in the tape file names the file it hit (and
 * the damaged record by tape and offset), exit 1; a cut tape names the tape file and offset; the
 * result lands in the job's log and record; with a manager running the socket answers.
 */
import t from 'tap'
import type { Test } from 'tap'
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { backupFormat } from '../../backup/index.ts'
import { backup } from '../../cli/backup.ts'
import { startControlServer } from '../../dma/control/server.ts'
import { driversFor } from '../../dma/drivers/select.ts'
import { queryLogs } from '../../dma/jobs/log.ts'
import { jobsDir, loadJob } from '../../dma/jobs/registry.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import type { VerifyReport } from '../../dma/jobs/verify.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { mkdirp, writeFile as vfsWrite } from '../backup/helpers.ts'

interface Setup {
  state: string
  pool: string
  tape: string
  job: string
  service: DmaService
}

async function backedUp(t: Test, shortState = false): Promise<Setup> {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'V1', { capacity: 64 * 1024 * 1024 })
  const vfs = new MemoryVfs()
  const exp: NdmpExport = { path: '/exp', backend: 'memory', vfs, root: vfs.root() }
  await mkdirp(vfs, 'docs/old')
  await vfsWrite(vfs, 'docs/a.txt', Buffer.from('alpha\n'))
  await vfsWrite(vfs, 'docs/old/b.bin', Buffer.alloc(100_000, 7))
  await vfsWrite(vfs, 'c.txt', Buffer.from('gamma '.repeat(1000)))
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  // The manager's socket path must fit sockaddr_un: a short directory when one listens.
  const state = shortState ? await mkdtemp(join(tmpdir(), 'tsv-')) : join(dir, 'state')
  if (shortState) t.teardown(() => rm(state, { recursive: true, force: true }))
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), `127.0.0.1 dma secret\n`)
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/exp`), pool, level: 0 })).id)
  t.equal(job.state, 'done', job.error ?? 'backed up')
  return { state, pool, tape: join(pool, 'V1.tape'), job: job.id, service }
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await backup(argv, { out: (s) => (out += s), err: (s) => (err += s) })
  return { code, out, err }
}

t.test('a good backup verifies; the result is in the job log and record', async (t) => {
  const s = await backedUp(t)
  const r = await cli(['verify', s.job, '--state', s.state])
  t.equal(r.code, 0, r.out + r.err)
  t.match(r.out, /: 3 files, 106006 bytes checked/)
  t.match(r.out, /^verify OK: 3 files/m)
  const byLabel = await cli(['verify', '--label', 'V1', '--pool', s.pool, '--state', s.state, '--json'])
  t.equal(byLabel.code, 0)
  const report = JSON.parse(byLabel.out) as VerifyReport
  t.match(report, { job: s.job, ok: true, files: 3, bytes: '106006', tapes: ['V1'], mismatches: [], damage: [], indexed: true })
  t.match((await loadJob(jobsDir(s.state), s.job)).verify, { ok: true, files: 3 })
  const log = (await queryLogs(jobsDir(s.state), { job: s.job })).map((l) => l.message)
  t.match(log.at(-1), /^verify OK: 3 files, 106006 bytes match/)
  const list = await cli(['list', '--state', s.state])
  t.match(list.out, /^ +1 +done .* V1 +verified OK$/m, 'list shows the verify')
})

t.test('one flipped tape byte names the file it hit', async (t) => {
  const s = await backedUp(t)
  const tape = await readFile(s.tape)
  // b.bin is 100,000 bytes of 7: a run no header has.
  const at = tape.indexOf(Buffer.alloc(4096, 7)) + 1000
  t.ok(at > 1000, 'b.bin found on the tape')
  tape[at] = 8
  await writeFile(s.tape, tape)
  const r = await cli(['verify', s.job, '--state', s.state])
  t.equal(r.code, 1, 'exit 1')
  t.match(r.out, /^MISMATCH docs\/old\/b\.bin: at stream offset \d+ \(100000 bytes\)/m)
  t.match(r.out, new RegExp(`^DAMAGE ${s.tape.replace(/[/.]/g, '\\$&')}: at byte \\d+: record of \\d+ bytes fails its CRC`, 'm'))
  t.match(r.out, /^verify FAILED: .*1 file\(s\) differ: docs\/old\/b\.bin/m)
  t.notMatch(r.out, /MISMATCH docs\/a\.txt|MISMATCH c\.txt/, 'only the hit file')
  t.match((await loadJob(jobsDir(s.state), s.job)).verify, { ok: false, mismatches: [{ path: 'docs/old/b.bin' }] })
  const errors = await queryLogs(jobsDir(s.state), { job: s.job, severity: 'error' })
  t.match(errors.at(-1)?.message, /verify FAILED/)
})

t.test('a cut tape names the tape file and offset', async (t) => {
  const s = await backedUp(t)
  await truncate(s.tape, 128 + 16 + 5000)
  const r = await cli(['verify', s.job, '--state', s.state, '--json'])
  t.equal(r.code, 1)
  const report = JSON.parse(r.out) as VerifyReport
  t.match(report, { ok: false, error: `${s.tape}: at byte 128: truncated record (5000 of ${report.error?.match(/of (\d+) bytes/)?.[1] ?? ''} bytes)` })
})

t.test('through the running manager; wrong arguments', async (t) => {
  const s = await backedUp(t, true)
  const control = await startControlServer(s.service)
  t.teardown(() => control.close())
  const r = await cli(['verify', s.job, '--state', s.state, '--json'])
  t.equal(r.code, 0, r.err)
  t.match(JSON.parse(r.out), { ok: true, job: s.job })
  const none = await cli(['verify', '99', '--state', s.state])
  t.match([none.code, none.err], [1, /DMA_NO_JOB: no job 99/])
  const noLabel = await cli(['verify', '--label', 'ZZ', '--pool', s.pool, '--state', s.state])
  t.match([noLabel.code, noLabel.err], [1, /DMA_NO_JOB: pool .* holds no backup of tape ZZ/])
  const both = await cli(['verify', s.job, '--label', 'V1', '--state', s.state])
  t.match([both.code, both.err], [2, /verify: JOB, or --label LABEL --pool POOL/])
  const noPool = await cli(['verify', '--label', 'V1', '--state', s.state])
  t.match([noPool.code, noPool.err], [2, /needs --pool POOL/])
})

t.test('a file: export (the file driver writes the tape raw): our stream verifies, other bytes do not', async (t) => {
  const dir = t.testdir({})
  const vfs = new MemoryVfs()
  await vfsWrite(vfs, 'one.txt', Buffer.from('one\n'))
  await vfsWrite(vfs, 'two.bin', Buffer.alloc(50_000, 2))
  const chunks: Buffer[] = []
  await backupFormat.writeBackup({ vfs, root: vfs.root(), live: false, name: '/m' }, { write: async (c) => { chunks.push(Buffer.from(c)) } }, { level: 0, base: null, compress: 'gzip' })
  await writeFile(join(dir, 'stream.tgz'), Buffer.concat(chunks))
  await writeFile(join(dir, 'noise.bin'), Buffer.alloc(4096, 0x41))
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'R1', { capacity: 1024 * 1024 })
  await Pool.label(pool, 'R2', { capacity: 1024 * 1024 })
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  const ours = await service.wait((await service.start({ name: 'manual', spec: parseExport(`file:${join(dir, 'stream.tgz')}`), pool, level: 0, verify: 'read' })).id)
  t.match(ours, { state: 'done', tapes: ['R1'], verify: { method: 'read', ok: true, files: 2, bytes: '50004' } }, 'verify=read after the job: a gzip stream inflated and checked')
  const noise = await service.wait((await service.start({ name: 'manual', spec: parseExport(`file:${join(dir, 'noise.bin')}`), pool, level: 0 })).id)
  const r = await cli(['verify', noise.id, '--state', state, '--json'])
  t.equal(r.code, 1)
  t.match(JSON.parse(r.out), { ok: false, indexed: false, error: /job 2 \(R2\)/ }, 'not a stream of ours: an error naming the backup')
})
