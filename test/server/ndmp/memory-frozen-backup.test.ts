/*
 * Issue 16 §5 for memory exports: a backup reads a frozen copy of the tree taken when
 * DATA_START_BACKUP is accepted (server/ndmp/exports.ts snapshotOf), so files changed, removed or
 * added while it runs are backed up as of the start; the DMA's job log says "read from a frozen
 * copy"; a local export is still read live and says so. Driven by our manager (dma/) over NDMP;
 * the tape is read back through the pool's tape files.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { backupFormat } from '../../../backup/index.ts'
import { driversFor } from '../../../dma/drivers/select.ts'
import { queryLogs } from '../../../dma/jobs/log.ts'
import { jobsDir } from '../../../dma/jobs/registry.ts'
import { DmaService } from '../../../dma/jobs/service.ts'
import { tapePath } from '../../../dma/pool/index-file.ts'
import { Pool } from '../../../dma/pool/pool.ts'
import { TapeStreamSource } from '../../../dma/pool/tape-reader.ts'
import { parseExport } from '../../../dma/schedule/export-spec.ts'
import { snapshotOf } from '../../../server/ndmp/exports.ts'
import { startNdmpServer } from '../../../server/ndmp/server.ts'
import type { NdmpExport } from '../../../server/ndmp/service-types.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { mkdirp, remove, snapshotTree, writeFile as vfsWrite } from '../../backup/helpers.ts'
import { startServer } from '../../helpers/server.ts'

t.test('a memory export changed during its backup is backed up as of the start', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'F1', { capacity: 64 * 1024 * 1024 })
  const vfs = new MemoryVfs()
  await mkdirp(vfs, 'docs')
  await vfsWrite(vfs, 'docs/report.txt', 'version 1\n')
  await vfsWrite(vfs, 'docs/big.bin', Buffer.alloc(2 * 1024 * 1024, 1))
  await vfsWrite(vfs, 'gone.txt', 'removed during the backup\n')
  const atStart = await snapshotTree(vfs)
  const take = snapshotOf(vfs)
  if (take === undefined) throw new Error('a memory export has a frozen copy')
  let frozenAt = 0
  const exp: NdmpExport = {
    path: '/mem',
    backend: 'memory',
    vfs,
    root: vfs.root(),
    // The frozen copy, then the live tree changes at once: in place, removed, added.
    snapshot: async () => {
      const snap = await take()
      frozenAt++
      await vfsWrite(vfs, 'docs/report.txt', 'version 2, written while the backup ran\n')
      await vfs.write((await vfs.lookup((await vfs.lookup(vfs.root(), Buffer.from('docs'))).ref, Buffer.from('big.bin'))).ref, 4096n, Buffer.alloc(8192, 2), 'unstable')
      await remove(vfs, 'gone.txt')
      await vfsWrite(vfs, 'new.txt', 'added during the backup\n')
      return snap
    },
  }
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret\n')
  const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/mem`), pool, level: 0 })).id)
  t.equal(job.state, 'done', job.error ?? 'done')
  t.equal(frozenAt, 1, 'one frozen copy for the backup')
  const log = (await queryLogs(jobsDir(state), { job: job.id })).map((l) => l.message)
  t.ok(log.some((m) => /\/mem: read from a frozen copy of the memory export taken at the start \(5 objects; file data shared copy-on-write\)/.test(m)), 'the job log says it read a frozen copy')
  t.notOk(log.some((m) => m.includes('read live')), 'not live')

  const restored = new MemoryVfs()
  const src = new TapeStreamSource([tapePath(pool, 'F1')])
  await backupFormat.readBackup(src, 'F1', { kind: 'vfs', vfs: restored, root: restored.root(), owner: { uid: 0, gid: 0 } }, { overwrite: true, applyDeletions: false })
  await src.close()
  const got = await snapshotTree(restored)
  t.strictSame(Object.keys(got).sort(), Object.keys(atStart).sort(), 'the names at the start: gone.txt in, new.txt out')
  for (const p of ['docs/report.txt', 'docs/big.bin', 'gone.txt']) t.equal(got[p]?.data, atStart[p]?.data, `${p} as of the start`)
  t.equal(Buffer.from((await snapshotTree(vfs))['docs/report.txt']?.data ?? '', 'base64').toString(), 'version 2, written while the backup ran\n', 'the live tree has the change')
})

t.test('the server picks per backend: memory a frozen copy, local live', async (t) => {
  const dir = t.testdir({ local: { 'x.txt': 'local file\n' } })
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'M1', { capacity: 64 * 1024 * 1024 })
  await Pool.label(pool, 'M2', { capacity: 64 * 1024 * 1024 })
  mkdirSync(join(dir, 'state'))
  const s = await startServer(t, `/mem *(rw,insecure,no_root_squash,backend=memory)\n${join(dir, 'local')} *(rw,insecure,no_root_squash,backend=local)\n`, {
    ndmp: { port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'pw']]), tapes: [{ name: pool, path: pool }] },
  })
  const state = join(dir, 'state')
  writeFileSync(join(state, 'ndmp-auth'), '127.0.0.1 dma pw\n')
  const service = await DmaService.open(state, driversFor(state))
  const port = String(s.server.ndmpPort)
  const mem = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${port}:/mem`), pool, level: 0 })).id)
  t.equal(mem.state, 'done', mem.error ?? 'done')
  const memLog = (await queryLogs(jobsDir(state), { job: mem.id })).map((l) => l.message).join('\n')
  t.match(memLog, /\/mem: read from a frozen copy/)
  t.notMatch(memLog, /read live/)
  const loc = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${port}:${join(dir, 'local')}`), pool, level: 0 })).id)
  t.equal(loc.state, 'done', loc.error ?? 'done')
  const locLog = (await queryLogs(jobsDir(state), { job: loc.id })).map((l) => l.message).join('\n')
  t.match(locLog, /read live \(no snapshot\)/)
  t.notMatch(locLog, /frozen copy/)
})
