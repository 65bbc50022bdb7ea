/*
 * The change log's default writes are durable by themselves: segments are
 * written through an fd opened O_DSYNC (log-files.ts, LogIo.durableWrites),
 * so a group costs one write and no separate fdatasync. Checked on the fd
 * the log really holds (/proc/self/fdinfo: its open flags), for a new
 * segment, for the segment a reopened log recovers and goes on appending
 * to, and for the segment a roll creates; what was appended reads back
 * after a reopen. Crash safety of these writes is the crash tests' part
 * (change-log.test.ts, a writer killed mid-stream).
 */
import t from 'tap'
import { readdirSync } from 'node:fs'
import { dsync, flagsOf } from '../../helpers/fd-flags.ts'
import { join } from 'node:path'
import { ChangeLog } from '../../../server/replication/change-log.ts'
import type { Change } from '../../../vfs/replica/change.ts'

const change = (n: number): Change => ({ op: 'remove', dir: { id: 1n, gen: 0 }, name: Buffer.from(`f-${String(n)}`), times: [] })


t.test('segments are written through O_DSYNC fds: new, recovered and rolled', { skip: process.platform !== 'linux' ? 'reads /proc/self/fdinfo' : false }, async (t) => {
  const dir = join(t.testdir(), 'log')
  const first = join(dir, '00000000000000000001.log')
  let log = await ChangeLog.open({ dir, exportId: 7, segmentBytes: 4096 })
  for (let i = 1; i <= 3; i++) log.append(change(i))
  await log.durable(3n)
  t.same(flagsOf(first).map(dsync), [true], 'a new segment: one fd, O_DSYNC')
  t.equal(log.stats().syncs, log.stats().groups + 1, 'one flush per group (the write itself), plus the directory fsync of the new segment')
  await log.close()

  log = await ChangeLog.open({ dir, exportId: 7, segmentBytes: 4096 })
  t.same(flagsOf(first).map(dsync), [false], 'recovery leaves the last segment open for reading and writing, not O_DSYNC')
  log.append(change(4))
  await log.durable(4n)
  t.same(flagsOf(first).map(dsync), [true], 'the first append reopens it O_DSYNC (and closes the other fd)')
  // Past the segment size: a roll to a new segment, opened O_DSYNC too.
  let n = 4
  while (log.stats().segments < 2) {
    log.append(change(++n))
    await log.durable(BigInt(n))
  }
  const second = readdirSync(dir).filter((f) => f.endsWith('.log')).sort().at(-1) ?? ''
  t.not(second, '00000000000000000001.log')
  t.same(flagsOf(join(dir, second)).map(dsync), [true], 'a rolled segment: O_DSYNC')
  t.same(flagsOf(first), [], 'the old segment is closed')
  await log.close()

  log = await ChangeLog.open({ dir, exportId: 7, segmentBytes: 4096 })
  t.equal(log.lastSeq(), BigInt(n), 'everything appended reads back after a reopen')
  const all = await log.read(1n, 10_000, 1 << 20)
  t.same(all.map((c) => (c.change.op === 'remove' ? c.change.name.toString() : '')), Array.from({ length: n }, (_, i) => `f-${String(i + 1)}`))
  await log.close()
})
