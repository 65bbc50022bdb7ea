/*
 * The change log keeps the newest KEEP_DECODED changes as they were appended: a sender that keeps
 * up reads them without decoding the records again; older ones, and every one after a reopen, are
 * decoded from their frames and equal to what was appended. Seed: TSNFS_SEED.
 */
import t from 'tap'
import { join } from 'node:path'
import { ChangeLog, KEEP_DECODED } from '../../../server/replication/change-log.ts'
import type { Change } from '../../../vfs/replica/change.ts'
import { randomChanges } from './random-change.ts'

const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${String(seed)} (TSNFS_SEED to repeat)`)

t.test('recent changes are read back as appended; older ones and after reopen, decoded and equal', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await ChangeLog.open({ exportId: 3, dir })
  const next = randomChanges(seed, false)
  const changes: Change[] = []
  const n = KEEP_DECODED + 100
  for (let i = 0; i < n; i++) {
    const c = next()
    changes.push(c)
    log.append(c)
  }
  await log.durable(log.lastSeq())

  const recent = await log.read(BigInt(n - 9), 10, 1e9)
  t.equal(recent.length, 10)
  t.ok(recent.every((r, i) => r.change === changes[n - 10 + i]), 'the newest 10: the appended objects, not decoded again')
  const old = await log.read(1n, 10, 1e9)
  t.strictSame(old.map((r) => r.change), changes.slice(0, 10), 'the oldest: decoded, equal')
  t.ok(old.every((r, i) => r.change !== changes[i]), 'past the window: decoded from the frames')
  const edge = await log.read(BigInt(n - KEEP_DECODED), 2, 1e9)
  t.ok(edge[0]?.change !== changes[n - KEEP_DECODED - 1] && edge[1]?.change === changes[n - KEEP_DECODED], 'exactly the newest KEEP_DECODED kept')
  await log.close()

  const again = await ChangeLog.open({ exportId: 3, dir })
  t.teardown(() => again.close())
  const all = await again.read(1n, n, 1e9)
  t.strictSame(all.map((r) => r.change), changes, 'after reopen: every change decoded, equal')
})
