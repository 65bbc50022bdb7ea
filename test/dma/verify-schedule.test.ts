/*
 * The schedule's verify=restore: a scheduled backup (the scheduler on a test clock) of a memory
 * export over NDMP is, once done, restored from its tape into a scratch directory under the
 * manager's state directory and each file hashed against its recorded SHA-256; the result is in
 * the job log and record, and the scratch directory is gone after. A damaged tape restored the
 * same way names the file that differs.
 */
import t from 'tap'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { driversFor } from '../../dma/drivers/select.ts'
import { queryLogs } from '../../dma/jobs/log.ts'
import { jobsDir } from '../../dma/jobs/registry.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { SCRATCH_DIR, verifyByRestore } from '../../dma/jobs/verify-restore.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { parseSchedule } from '../../dma/schedule/file.ts'
import { Scheduler } from '../../dma/schedule/scheduler.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { mkdirp, writeFile as vfsWrite } from '../backup/helpers.ts'

t.test('verify=restore after a scheduled backup', async (t) => {
  const dir = t.testdir({})
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'R1', { capacity: 64 * 1024 * 1024 })
  const vfs = new MemoryVfs()
  const exp: NdmpExport = { path: '/exp', backend: 'memory', vfs, root: vfs.root() }
  await mkdirp(vfs, 'src/deep')
  await vfsWrite(vfs, 'src/main.c', Buffer.from('int main(void) { return 0; }\n'))
  await vfsWrite(vfs, 'src/deep/blob.bin', Buffer.alloc(300_000, 0x5a))
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: join(dir, 'srv') })
  t.teardown(() => server.close())
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(join(state, 'ndmp-auth'), '127.0.0.1 dma secret\n')
  const entries = parseSchedule(`30 1 * * *  nightly  127.0.0.1:${server.port}:/exp  pool  level=0  verify=restore\n`, 'sched', dir)
  t.match(entries, [{ name: 'nightly', verify: 'restore' }])
  let now = new Date('2026-12-05T12:00:00Z')
  const started: string[] = []
  const scheduler = await Scheduler.start(service, entries, { now: () => now, onTick: (s) => started.push(...s.map((x) => x.id)) })
  t.teardown(() => scheduler.stop())
  now = new Date('2026-12-06T01:30:00Z')
  await scheduler.tick()
  t.equal(started.length, 1, 'the slot ran')
  const job = await service.wait(started[0] ?? '')
  t.equal(job.state, 'done', job.error ?? 'done')
  t.match(job.verify, { method: 'restore', ok: true, files: 2, bytes: '300029', mismatches: [], missing: [], tapes: ['R1'] })
  const log = (await queryLogs(jobsDir(state), { job: job.id })).map((l) => l.message)
  t.ok(log.some((m) => m.startsWith('verify by restore: restoring into a scratch directory under')))
  t.ok(log.some((m) => m.startsWith('verify by restore OK: 2 files, 300029 bytes match')), 'the result is in the job log')
  t.strictSame(await readdir(join(state, SCRATCH_DIR)), [], 'the scratch directory is removed')
  const record = JSON.parse(await readFile(join(jobsDir(state), `${job.id}.json`), 'utf8')) as { verify?: { ok: boolean } }
  t.equal(record.verify?.ok, true, 'and in the job record')

  // The same tape, one byte of blob.bin flipped: the restored file differs and is named.
  const tapeFile = join(pool, 'R1.tape')
  const tape = await readFile(tapeFile)
  const at = tape.indexOf(Buffer.alloc(8192, 0x5a)) + 5000
  tape[at] = 0
  await writeFile(tapeFile, tape)
  const bad = await verifyByRestore(state, { job: job.id })
  t.match(bad, { method: 'restore', ok: false, mismatches: [{ path: 'src/deep/blob.bin', size: '300000' }], missing: [] })
  t.equal(bad.damage.length, 1, 'the damaged record is reported too')
  t.strictSame(await readdir(join(state, SCRATCH_DIR)), [], 'removed after a failed verify too')
  t.throws(() => parseSchedule('0 1 * * * x file:a pool level=0 verify=maybe\n', 'sched', dir), { code: 'DMA_SCHEDULE_SYNTAX', message: /sched:1: "verify=maybe" is not an option/ })
})
