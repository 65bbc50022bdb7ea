/*
 * A WRITE's bytes given to the change log's append() are kept in memory beside the record, never
 * logged, within a byte budget that lets the oldest go first (and with the record's decoded change,
 * KEEP_DECODED): read() returns them, and the sender's read-ahead ships them without reading the
 * primary's file; a WRITE whose bytes are no longer kept is read from the file as before.
 */
import t from 'tap'
import { join } from 'node:path'
import { ReadAhead } from '../../../server/replication/batch.ts'
import { ChangeLog } from '../../../server/replication/change-log.ts'
import type { DataSource } from '../../../server/replication/log-types.ts'
import type { Change } from '../../../vfs/replica/change.ts'

const ref = { id: 42n, gen: 1 }
const write = (i: number, length: number): Change => ({ op: 'write', ref, offset: BigInt(i * 4096), length, data: null, times: [] })
const bytesOf = (i: number, length: number): Buffer => Buffer.alloc(length, 0x41 + (i % 26))

/** The file's bytes as the DataSource gives them (never a kept write's), counting reads. */
function counting(): DataSource & { reads: bigint[] } {
  const reads: bigint[] = []
  return {
    reads,
    readRange(_ref, offset, length) {
      reads.push(offset)
      return Promise.resolve(Buffer.alloc(length, 0x2e))
    },
  }
}

t.test('kept WRITE bytes: returned by read, not logged, the oldest let go past the budget', async (t) => {
  const dir = join(t.testdir(), 'log')
  const log = await ChangeLog.open({ exportId: 1, dir, dataBytes: 10_000 })
  // Five writes of 4,000 bytes against a 10,000-byte budget: the last two keep theirs.
  const given = [0, 1, 2, 3, 4].map((i) => bytesOf(i, 4000))
  for (const [i, b] of given.entries()) log.append(write(i, 4000), [], b)
  // Not kept: the wrong length, and data for a change that is not a WRITE logged without data.
  log.append(write(5, 4000), [], Buffer.alloc(3999))
  log.append({ op: 'remove', dir: ref, name: Buffer.from('x'), times: [] }, [], Buffer.alloc(4))
  await log.durable(log.lastSeq())
  const read = await log.read(1n, 100, 1e9)
  t.strictSame(read.map((r) => r.data === undefined ? null : r.data === given[Number(r.seq) - 1]), [null, null, null, true, true, null, null], 'the newest within the budget, as given')
  const plain = await ChangeLog.open({ exportId: 2, dir: join(t.testdir(), 'plain') })
  plain.append(write(0, 4000))
  await plain.durable(1n)
  t.equal(read[0]?.bytes, (await plain.read(1n, 1, 1e9))[0]?.bytes, 'the record is as large as one appended without data')
  await plain.close()

  // The sender's read-ahead ships the kept bytes and reads the file for the others.
  const data = counting()
  const batch = await new ReadAhead(log, data, { changes: 100, bytes: 1e9 }).take(1n)
  t.strictSame(data.reads, [0n, 4096n, 8192n, 20480n], 'the file read only for the WRITEs whose bytes are not kept')
  t.strictSame(batch.changes.map((c) => c.data?.[0] ?? null), [0x2e, 0x2e, 0x2e, 0x44, 0x45, 0x2e, null])
  await log.close()

  const again = await ChangeLog.open({ exportId: 1, dir })
  t.teardown(() => again.close())
  t.ok((await again.read(1n, 100, 1e9)).every((r) => r.data === undefined), 'after reopen: nothing kept (the bytes were never logged)')
})

t.test('kept bytes go with the record once it leaves memory', async (t) => {
  const log = await ChangeLog.open({ exportId: 1, dir: join(t.testdir(), 'log'), memoryBytes: 0 })
  t.teardown(() => log.close())
  log.append(write(0, 100), [], bytesOf(0, 100))
  t.ok((await log.read(1n, 1, 1e9))[0]?.data, 'kept while the record is in memory')
  log.append(write(1, 100), [], bytesOf(1, 100))
  await log.durable(log.lastSeq())
  await log.settled()
  t.strictSame((await log.read(1n, 2, 1e9)).map((r) => r.data), [undefined, undefined], 'written and past the memory budget: read from the segment, no bytes')
})
