/*
 * The scheduler: a job first seen runs at its next slot, not at once; a manager that was down
 * through several slots runs the job once at its next start (at the level of the latest missed
 * slot), not once per slot; a slot passed while the job still runs is skipped.
 */
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { driversFor } from '../../dma/drivers/select.ts'
import { DmaService } from '../../dma/jobs/service.ts'
import { Pool } from '../../dma/pool/pool.ts'
import { parseSchedule } from '../../dma/schedule/file.ts'
import { Scheduler } from '../../dma/schedule/scheduler.ts'
import { SCHEDULE_STATE_FILE } from '../../dma/schedule/state.ts'

type Started = Array<{ name: string; id: string; level: number; slot: Date }>

t.test('missed runs run once at the next start', async (t) => {
  const dir = t.testdir({ 'data.bin': 'payload' })
  const pool = join(dir, 'pool')
  for (const l of ['T1', 'T2', 'T3', 'T4']) await Pool.label(pool, l, { capacity: 1024 })
  const entries = parseSchedule('30 1 * * *  nightly  file:data.bin  pool  levels=0@sun,1-6\n', 'sched', dir)
  const state = join(dir, 'state')
  let now = new Date('2026-12-05T12:00:00Z') // a Saturday
  const clock = (): Date => now
  const ticks: Started[] = []
  const open = async (): Promise<{ service: DmaService; scheduler: Scheduler }> => {
    const service = await DmaService.open(state, driversFor(state))
    const scheduler = await Scheduler.start(service, entries, { now: clock, onTick: (s) => ticks.push(s) })
    t.teardown(() => scheduler.stop())
    return { service, scheduler }
  }

  const first = await open()
  t.strictSame(ticks, [[]], 'first seen: nothing is due')
  t.match(first.service.scheduled(), [{ name: 'nightly', next: '2026-12-06T01:30:00.000Z', level: 0 }], 'next: Sunday 01:30, a full')
  now = new Date('2026-12-06T01:30:00Z')
  await first.scheduler.tick()
  t.match(ticks.at(-1), [{ name: 'nightly', level: 0, slot: new Date('2026-12-06T01:30:00Z') }], 'the Sunday slot runs a level 0')
  const id0 = ticks.at(-1)?.[0]?.id ?? ''
  t.equal((await first.service.wait(id0)).state, 'done')
  await first.scheduler.tick()
  t.strictSame(ticks.at(-1), [], 'the same slot does not run twice')
  await first.scheduler.stop()
  t.match(JSON.parse(await readFile(join(state, SCHEDULE_STATE_FILE), 'utf8')), { jobs: { nightly: { lastSlot: '2026-12-06T01:30:00.000Z' } } })

  // Down from Sunday to Thursday noon: Mon, Tue, Wed and Thu 01:30 were missed.
  now = new Date('2026-12-10T12:00:00Z')
  const second = await open()
  const missed = ticks.at(-1) ?? []
  t.equal(missed.length, 1, 'one run for four missed slots')
  t.match(missed[0], { level: 4, slot: new Date('2026-12-10T01:30:00Z') }, 'for the latest missed slot (Thursday: level 4)')
  const job = await second.service.wait(missed[0]?.id ?? '')
  t.match(job, { state: 'done', level: 4, scheduledFor: '2026-12-10T01:30:00.000Z' })
  await second.scheduler.tick()
  t.strictSame(ticks.at(-1), [], 'nothing more is due until Friday')
  t.match(second.service.scheduled(), [{ next: '2026-12-11T01:30:00.000Z', level: 5 }])
})

t.test('a slot passed while the job still runs is skipped and said', async (t) => {
  const dir = t.testdir({ 'data.bin': 'x'.repeat(50) })
  const pool = join(dir, 'pool')
  await Pool.label(pool, 'T1', { capacity: 10 })
  const entries = parseSchedule('*/5 * * * *  often  file:data.bin  pool  level=1\n', 'sched', dir)
  let now = new Date('2026-12-05T12:00:00Z')
  const ticks: Started[] = []
  const errors: string[] = []
  const service = await DmaService.open(join(dir, 'state'), driversFor(join(dir, 'state')))
  const scheduler = await Scheduler.start(service, entries, { now: () => now, onTick: (s) => ticks.push(s), onError: (err) => errors.push(err instanceof Error ? err.message : String(err)) })
  t.teardown(() => scheduler.stop())
  now = new Date('2026-12-05T12:05:00Z')
  await scheduler.tick()
  const id = ticks.at(-1)?.[0]?.id ?? ''
  t.ok(id !== '', 'started')
  // It fills its one tape and waits for another.
  for (let i = 0; i < 200 && (await service.get(id)).state !== 'paused'; i++) await new Promise((r) => setTimeout(r, 10))
  now = new Date('2026-12-05T12:10:00Z')
  await scheduler.tick()
  t.strictSame(ticks.at(-1), [], 'not started twice')
  t.match(errors, [/job often still runs as job 1/])
  await service.close()
})
