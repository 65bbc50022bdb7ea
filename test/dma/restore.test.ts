/*
 * Restore driven by our backup manager over NDMP (issue 16 §7), against our own server as data
 * and tape agent (ADDR_LOCAL): two jobs (level 0, then a level 1 after changes, deletions and a
 * rename) go through the job service; their file history is ingested into the catalog (tape label,
 * file number, stream offsets) and browsable there; then
 *  - a full restore of the chain into another export ends in the tree of the last backup, exactly
 *    (the deleted and renamed-away names gone);
 *  - one small file from the level 0 (unchanged since) is restored by direct access: the mover
 *    moves a few records, not the backup's large file;
 *  - a partial restore to the original place keeps an existing file (the job fails naming it)
 *    unless --overwrite;
 *  - the restore is a job in the registry with its log.
 */
import t from 'tap'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Catalog } from '../../backup/catalog/catalog.ts'
import { backup } from '../../cli/backup.ts'
import { dirAt } from '../../backup/catalog/queries.ts'
import { driversFor } from '../../dma/drivers/select.ts'
import { jobsDir } from '../../dma/jobs/registry.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { queryLogs } from '../../dma/jobs/log.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { catalogPath, ingestJobs } from '../../dma/restore/ingest.ts'
import { restoreExport } from '../../dma/restore/run.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { mkdirp, remove, rename, resolve, snapshotTree, writeFile as vfsWrite } from '../backup/helpers.ts'

function mem(path: string): NdmpExport {
  const vfs = new MemoryVfs()
  return { path, backend: 'memory', vfs, root: vfs.root() }
}

async function readAll(e: NdmpExport, p: string): Promise<Buffer> {
  const ref = await resolve(e.vfs, p)
  const parts: Buffer[] = []
  for (let off = 0n; ;) {
    const r = await e.vfs.read(ref, off, 1 << 20)
    parts.push(Buffer.from(r.data))
    off += BigInt(r.data.length)
    if (r.eof || r.data.length === 0) break
  }
  return Buffer.concat(parts)
}

const NOW = (): bigint => BigInt(Date.now() + 60_000) * 1_000_000n

t.test('backup jobs, ingest, full and partial restore over NDMP', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'L1', { capacity: 256 * 1024 * 1024 })
  await Pool.label(pool, 'L2', { capacity: 256 * 1024 * 1024 })
  const exp = mem('/exp')
  const dest = mem('/r')
  const big = Buffer.alloc(8 * 1024 * 1024, 3)
  await mkdirp(exp.vfs, 'docs/old')
  await mkdirp(exp.vfs, 'empty')
  await vfsWrite(exp.vfs, 'big.bin', big)
  await vfsWrite(exp.vfs, 'docs/a.txt', 'alpha\n')
  await vfsWrite(exp.vfs, 'docs/old/b.txt', 'beta\n')
  await vfsWrite(exp.vfs, 'docs/gone.txt', 'deleted before level 1\n')
  await vfsWrite(exp.vfs, 'docs/moved.txt', 'renamed before level 1\n')
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp, dest], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret md5\n')
  const exportText = `127.0.0.1:${server.port}:/exp`
  const spec = parseExport(exportText)

  const j0 = await service.wait((await service.start({ name: 'manual', spec, pool, level: 0 })).id)
  t.match(j0, { state: 'done', tapes: ['L1'] }, j0.error ?? 'level 0 done')
  await new Promise((r) => setTimeout(r, 20))
  await vfsWrite(exp.vfs, 'docs/a.txt', 'alpha, changed\n')
  await remove(exp.vfs, 'docs/gone.txt')
  await rename(exp.vfs, 'docs/moved.txt', 'docs/old/moved.txt')
  await vfsWrite(exp.vfs, 'docs/new.txt', 'new at level 1\n')
  const j1 = await service.wait((await service.start({ name: 'manual', spec, pool, level: 1 })).id)
  t.match(j1, { state: 'done', tapes: ['L2'] }, j1.error ?? 'level 1 done')
  t.ok(j1.bytes < j0.bytes / 4, `the level 1 is small (${j1.bytes} of ${j0.bytes} bytes)`)
  const final = await snapshotTree(exp.vfs)

  t.test('ingest: the jobs are catalog backups, browsable', async (t) => {
    const atEnd = Catalog.open(catalogPath(state))
    t.same(atEnd.listBackups({ filesystem: exportText }).map((b) => b.jobId), [j0.id, j1.id], 'each job was ingested as it ended')
    t.same([...(await ingestJobs(atEnd, state)).added.keys()], [], 'a later ingest adds nothing')
    atEnd.close()
    const said = (await queryLogs(jobsDir(state), { job: j1.id })).map((l) => l.message)
    t.ok(said.some((m) => /^file history in the catalog as backup \d+ \(\d+ entries, \d+ ms\)$/.test(m)), `the job log says so: ${said.join(' | ')}`)
    // A manager that died between a job's end and its ingest: the catalog lacks the jobs; the next ingest adds them.
    await rm(catalogPath(state), { force: true })
    await rm(`${catalogPath(state)}-wal`, { force: true })
    await rm(`${catalogPath(state)}-shm`, { force: true })
    const cat = Catalog.open(catalogPath(state))
    t.teardown(() => { cat.close() })
    const r = await ingestJobs(cat, state)
    t.same([...r.added.keys()], [j0.id, j1.id], 'both jobs ingested after the loss')
    t.same([...(await ingestJobs(cat, state)).added.keys()], [], 'a second ingest adds nothing')
    const [b0, b1] = cat.listBackups({ filesystem: exportText })
    t.match(b0, { level: 0, full: true, status: 'done', jobId: j0.id, tapes: [{ label: 'L1', fileNumber: 0, streamOffset: 0n }] })
    t.match(b1, { level: 1, full: false, baseId: b0?.id, jobId: j1.id, tapes: [{ label: 'L2' }] })
    const docs = dirAt(cat, exportText, '/docs', NOW())
    t.same(docs.entries.map((e) => e.name).sort(), ['a.txt', 'new.txt', 'old'], 'what /docs held at the level 1: deleted and renamed names gone')
    const a = docs.entries.find((e) => e.name === 'a.txt')?.version
    t.match(a, { backupId: b1?.id, tapeLabel: 'L2', tapeFile: 0, type: 'file', size: 15n })
    t.ok((a?.streamOffset ?? 0n) > 0n, 'a stream offset from fh_info')
    const old = dirAt(cat, exportText, '/docs/old', NOW())
    t.same(old.entries.map((e) => e.name).sort(), ['b.txt', 'moved.txt'])
    t.equal(old.entries.find((e) => e.name === 'b.txt')?.version?.backupId, b0?.id, 'b.txt unchanged: its version is the level 0\'s')
    t.same(dirAt(cat, exportText, '/empty', NOW()).entries, [], 'an empty directory')
  })

  t.test('full restore of the chain into another export', async (t) => {
    const logs: string[] = []
    const out = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: [], to: '/r/full', overwrite: false, onLog: (_l, m) => logs.push(m) })
    t.equal(out.job.state, 'done', out.job.error ?? logs.join('\n'))
    t.equal(out.plan.steps.length, 2, 'level 0 then level 1')
    const full = await snapshotTree(dest.vfs)
    const got = Object.fromEntries(Object.entries(full).filter(([p]) => p.startsWith('full/')).map(([p, e]) => [p.slice(5), { ...e, mtime: '' }]))
    const want = Object.fromEntries(Object.entries(final).map(([p, e]) => [p, { ...e, mtime: '' }]))
    t.same(got, want, 'the tree of the last backup, deletions and renames applied')
  })

  t.test('one unchanged file by direct access reads its records only', async (t) => {
    const out = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/docs/old/b.txt'], to: '/r/one', overwrite: false })
    t.equal(out.job.state, 'done', out.job.error ?? '')
    t.equal((await readAll(dest, 'one/docs/old/b.txt')).toString(), 'beta\n')
    await t.rejects(resolve(dest.vfs, 'one/big.bin'), { code: 'ENOENT' })
    t.equal(out.plan.steps.length, 1, 'only the level 0 holds it')
    t.ok(out.bytesMoved < 64n * 1024n, `the mover moved ${out.bytesMoved} bytes of a ${j0.bytes}-byte backup`)
    t.ok(out.reads >= 1 && out.reads <= 4, `${out.reads} MOVER_READs`)
    const log = (await queryLogs(jobsDir(state), { job: out.job.id })).map((l) => l.message)
    t.match(log.at(-1), /^done: 1 name\(s\) restored/)
  })

  t.test('to the original place: kept unless overwrite', async (t) => {
    await vfsWrite(exp.vfs, 'docs/a.txt', 'local edit\n')
    const klog: string[] = []
    const kept = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/docs/a.txt'], to: null, overwrite: false, onLog: (_l, m) => klog.push(m) })
    t.match(kept.job, { state: 'failed', error: /1 name\(s\) not restored: \/docs\/a\.txt/ }, 'the job says the name was not restored')
    t.ok(klog.some((m) => /docs\/a\.txt: exists \(a file\); kept, not overwritten/.test(m)), 'and why: it exists')
    t.equal((await readAll(exp, 'docs/a.txt')).toString(), 'local edit\n', 'an existing file is kept')
    const over = await restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/docs/a.txt'], to: null, overwrite: true })
    t.equal(over.job.state, 'done', over.job.error ?? '')
    t.equal((await readAll(exp, 'docs/a.txt')).toString(), 'alpha, changed\n', 'replaced by the level 1\'s copy')
  })

  t.test('tsnfs backup restore', async (t) => {
    let out = ''
    let err = ''
    const io = { out: (s: string) => { out += s }, err: (s: string) => { err += s } }
    t.equal(await backup(['restore', exportText, '--state', state, '--path', '/docs/new.txt', '--to', '/r/cli', '--json'], io), 0, err)
    const r = JSON.parse(out) as { job: { state: string; name: string }; backups: number[]; bytesMoved: string }
    t.match(r, { job: { state: 'done', name: 'restore' }, backups: [2] })
    t.equal((await readAll(dest, 'cli/docs/new.txt')).toString(), 'new at level 1\n')
    out = ''
    err = ''
    t.equal(await backup(['restore', exportText, '--state', state, '--level-chain', '--path', '/docs'], io), 2, 'usage: --level-chain takes no --path')
    t.match(err, /--level-chain restores everything/)
    err = ''
    t.equal(await backup(['restore', exportText, '--state', state, '--path', '/nope'], io), 1)
    t.match(err, /CATALOG_NOT_FOUND: \/nope: not in the backup of that date/)
    err = ''
    t.equal(await backup(['restore', 'file:/x', '--state', state], io), 1)
    t.match(err, /DMA_BAD_EXPORT/)
  })

  t.test('a path the backup does not hold', async (t) => {
    await t.rejects(restoreExport({ stateDir: state, export: exportText, atNs: NOW(), paths: ['/docs/gone.txt'], to: '/r/x', overwrite: false }), { code: 'CATALOG_NOT_FOUND' })
    const before = BigInt(Date.parse('2000-01-01')) * 1_000_000n
    await t.rejects(restoreExport({ stateDir: state, export: exportText, atNs: before, paths: [], to: '/r/x', overwrite: false }), { code: 'CATALOG_NOT_FOUND' })
  })
})
