/*
 * The job service with the file driver over a real pool: a backup that fills its tape pauses
 * "needs next tape" naming the next label, refuses continue until that tape is labelled, then
 * goes on; the tapes hold the stream in order. Abort of a paused job; logs by job, backup level
 * and severity; a registry left running by a dead manager is marked failed.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { driversFor } from '../../dma/drivers/select.ts'
import { queryLogs } from '../../dma/jobs/log.ts'
import type { JobRecord } from '../../dma/jobs/record.ts'
import { jobsDir, loadJob, saveJob } from '../../dma/jobs/registry.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { tapePath } from '../../dma/pool/index-file.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'

/** Polls until the job reaches `state` (the service saves each change). */
async function until(service: DmaService, id: string, state: JobRecord['state']): Promise<JobRecord> {
  for (let i = 0; i < 500; i++) {
    const job = await service.get(id)
    if (job.state === state) return job
    await sleep(10)
  }
  throw new Error(`job ${id} never became ${state}`)
}

t.test('EOM pauses for the next tape; continue goes on', async (t) => {
  const dir = t.testdir({})
  const data = randomBytes(2500)
  await writeFile(join(dir, 'stream.tar'), data)
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'A', { capacity: 1000 })
  await Pool.label(pool, 'B')
  const service = await DmaService.open(join(dir, 'state'), driversFor(join(dir, 'state')))
  const started = await service.start({ name: 'manual', spec: parseExport('file:stream.tar', dir), pool, level: 0 })
  t.equal(started.state, 'running')
  const paused = await until(service, started.id, 'paused')
  t.strictSame(paused.needs, { label: 'B', isNew: false }, 'the next labelled tape is named')
  t.strictSame(paused.tapes, ['A'])
  await t.rejects(service.continue('99'), { code: 'DMA_NO_JOB' })
  await service.continue(started.id)
  const second = await until(service, started.id, 'paused')
  t.strictSame(second.needs, { label: 'pool-001', isNew: true }, 'no tape left: a new label to create')
  await t.rejects(service.continue(started.id), { code: 'DMA_NO_TAPE', message: /tsnfs backup label .*pool pool-001/ })
  await Pool.label(pool, 'pool-001')
  await service.continue(started.id)
  const done = await service.wait(started.id)
  t.match(done, { state: 'done', bytes: 2500, files: 1, tapes: ['A', 'B', 'pool-001'] })
  const tapes = await Promise.all(['A', 'B', 'pool-001'].map((l) => readFile(tapePath(pool, l))))
  t.strictSame(tapes.map((b) => b.length), [1000, 1000, 500])
  t.ok(Buffer.concat(tapes).equals(data), 'the tapes hold the stream in order')
  const index = await (await Pool.open(pool)).index()
  t.strictSame(index.tapes.map((x) => x.state), ['full', 'full', 'used'])
  t.match(index.backups, [{ job: started.id, status: 'done', bytes: 2500 }])
  await t.rejects(service.continue(started.id), { code: 'DMA_JOB_STATE', message: /is done/ })
  await t.rejects(service.abort(started.id), { code: 'DMA_JOB_STATE' })
  const lines = await queryLogs(jobsDir(join(dir, 'state')), { job: started.id, severity: 'warn' })
  t.match(lines.map((l) => l.message), [/tape A is full/, /needs next tape B after A: tsnfs backup continue/, /tape B is full/, /needs next tape pool-001 after B: label it/])
})

t.test('abort a paused job; a pool with no tape pauses before writing', async (t) => {
  const dir = t.testdir({ 'f.bin': 'x'.repeat(100) })
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'A', { capacity: 10 })
  const state = join(dir, 'state')
  const service = await DmaService.open(state, driversFor(state))
  const one = await service.start({ name: 'nightly', spec: parseExport(`file:${join(dir, 'f.bin')}`), pool, level: 0 })
  await until(service, one.id, 'paused')
  await t.rejects(service.start({ name: 'nightly', spec: parseExport(`file:${join(dir, 'f.bin')}`), pool, level: 1 }), { code: 'DMA_JOB_STATE', message: /still runs as job 1/ })
  const aborted = await service.abort(one.id)
  t.match(aborted, { state: 'aborted', error: /job 1 was aborted/ })
  t.notOk('needs' in aborted, 'no longer waits for a tape')
  t.equal((await (await Pool.open(pool)).index()).backups[0]?.status, 'aborted')
  // The only tape is full (an aborted backup's tape is recyclable, so it is offered again).
  const two = await service.start({ name: 'nightly', spec: parseExport(`file:${join(dir, 'f.bin')}`), pool, level: 1 })
  const p = await until(service, two.id, 'paused')
  t.strictSame(p.tapes, ['A'], 'the aborted backup\'s tape is written over')
  await service.close()
  t.equal((await service.get(two.id)).state, 'aborted', 'close aborts live jobs')
  // An NDMP agent nobody answers for: the job fails, saying why.
  const none = await service.start({ name: 'x', spec: parseExport('127.0.0.1:1:/x'), pool, level: 0 })
  t.match(await service.wait(none.id), { state: 'failed', error: /cannot connect to 127\.0\.0\.1:1/ })
  const byLevel = await queryLogs(jobsDir(state), { backupLevel: 1 })
  t.ok(byLevel.length > 0 && byLevel.every((l) => l.job === two.id && l.backupLevel === 1), 'by backup level: only the level-1 job')
  t.match(byLevel.map((l) => l.message), [/level 1 backup of file:/, /level 1: changes since|level 1: no lower level/], 'says what the level is relative to')
  const errors = await queryLogs(jobsDir(state), { severity: 'error' })
  t.strictSame(errors.map((l) => [l.job, l.level]), [['1', 'error'], ['2', 'error'], ['3', 'error']])
})

t.test('a job a dead manager left running is marked failed', async (t) => {
  const dir = t.testdir({ 'f.bin': 'data' })
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'A', { capacity: 100 })
  const state = join(dir, 'state')
  const first = await DmaService.open(state, driversFor(state))
  const job = await first.wait((await first.start({ name: 'manual', spec: parseExport(`file:${join(dir, 'f.bin')}`), pool, level: 0 })).id)
  t.equal(job.state, 'done')
  await saveJob(jobsDir(state), { ...job, id: '2', state: 'paused', needs: { label: 'B', isNew: true } })
  const next = await DmaService.open(state, driversFor(state))
  t.match(await loadJob(jobsDir(state), '2'), { state: 'failed', error: /manager stopped/ })
  t.notOk('needs' in (await next.get('2')))
  t.equal((await next.get('1')).state, 'done', 'finished jobs are left alone')
  t.strictSame((await next.list()).map((j) => j.id), ['1', '2'])
  await t.rejects(next.get('x/../1'), { code: 'DMA_NO_JOB' })
})
