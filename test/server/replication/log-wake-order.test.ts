/*
 * A sender waiting for changes (waitAfter) is woken only after the change
 * log has handed the group's write to the file system (change-log.ts): the
 * sender's reading and encoding then overlaps the flush a stable reply
 * waits for instead of delaying it. Checked with a LogIo that records when
 * the write starts, against when the waiter's continuation runs; and the
 * waiter still gets every change.
 */
import t from 'tap'
import { join } from 'node:path'
import { ChangeLog } from '../../../server/replication/change-log.ts'
import type { LogIo } from '../../../server/replication/change-log.ts'
import { fdatasync, writeAll } from '../../../server/replication/log-segment.ts'
import type { Change } from '../../../vfs/replica/change.ts'

const change = (n: number): Change => ({ op: 'remove', dir: { id: 1n, gen: 0 }, name: Buffer.from(`f-${String(n)}`), times: [] })

t.test("the group's write starts before a waiting sender is woken", async (t) => {
  const order: string[] = []
  const io: LogIo = {
    write: (fd, data, position) => {
      order.push('write')
      return writeAll(fd, data, position)
    },
    sync: fdatasync,
  }
  const log = await ChangeLog.open({ dir: join(t.testdir(), 'log'), exportId: 1, io })
  t.teardown(() => log.close())
  // The first group creates the segment (an open before its write): the rounds append to it.
  await log.durable(log.append(change(0)))
  for (let round = 1; round <= 3; round++) {
    order.length = 0
    const woken = log.waitAfter(log.lastSeq()).then(() => order.push('woken'))
    const seq = log.append(change(round))
    await woken
    await log.durable(seq)
    t.same(order, ['write', 'woken'], `round ${String(round)}: write first, then the sender`)
    const got = await log.read(seq, 10, 1 << 20)
    t.same(got.map((c) => c.seq), [seq], 'the woken sender reads the change')
  }
})
