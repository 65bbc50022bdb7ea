import t from 'tap'
import { IdBatch } from '../../../../vfs/cluster/ids.ts'
import { compactChunk } from '../../../../vfs/cluster/data/compaction.ts'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { checkReferences } from '../../../../vfs/cluster/data/fsck.ts'
import { sliceKeys } from '../../../../vfs/cluster/data/keys.ts'
import { decodeSlices } from '../../../../vfs/cluster/data/slice.ts'
import { COUNTER } from '../../../../vfs/cluster/schema.ts'
import { counter, fixture, type Fixture } from './setup.ts'
import { checkedDb, refused } from '../statement-check.ts'

const now = { sec: 1_700_000_000, nsec: 0 }
const layout = { chunkSize: 64 * 1024, blockSize: 16 * 1024 }

async function keys(fx: Fixture): Promise<string[]> {
  const out: string[] = []
  for await (const o of fx.store.list('chunks/')) out.push(o.key)
  return out
}

async function records(fx: Fixture, inode: bigint, idx = 0): Promise<number> {
  const r = await fx.db.query('SELECT slices FROM tsnfs_chunk WHERE inode = $1 AND idx = $2', [inode, idx])
  return decodeSlices(r.rows[0]?.['slices'] as Buffer).length
}

t.test('compaction rewrites a fragmented chunk as one slice; reads are unchanged', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout, compactAt: 0 })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  for (let i = 0; i < 20; i++) {
    await fd.write(ino, BigInt(i * 3000 + 1000), Buffer.alloc(2500, i + 1), 'file_sync', now)
  }
  // A truncation in the middle leaves a zero record; a later write lands past it.
  await fx.db.transaction(async (tx) => {
    await fd.truncate(tx, ino, 58_500n, 30_000n)
    await tx.query('UPDATE tsnfs_node SET size = 30000 WHERE inode = $1', [ino])
  })
  await fd.write(ino, 40_000n, Buffer.from('tail'), 'file_sync', now)
  const size = 40_004n
  const before = await fd.read(ino, 0n, 50_000, size)
  t.equal(await records(fx, ino), 22)
  const blocksBefore = (await keys(fx)).length
  const r = await fd.compact(ino, 0)
  t.strictSame(r, { outcome: 'compacted', recordsBefore: 22, recordsAfter: 1 })
  t.equal(await records(fx, ino), 1)
  const other = createFileData({ db: fx.db, store: fx.store, sid: 2n, ...layout })
  t.teardown(() => other.close())
  t.ok((await other.read(ino, 0n, 50_000, size)).equals(before), 'another server reads the same bytes')
  fd.blocks.clear()
  t.ok((await fd.read(ino, 0n, 50_000, size)).equals(before), 'this server too, from the store')
  const live = await fx.db.query('SELECT id, size FROM tsnfs_slice_ref')
  t.equal(live.rowCount, 1, 'old reference rows deleted with their blocks')
  const slice = live.rows[0]
  t.equal(slice?.['size'], 40_004 - 1000, 'the new slice spans the first to the last data byte')
  await fd.flushUsage()
  t.equal(await counter(fx.db, COUNTER.usedBytes), 39_004)
  const after = await keys(fx)
  t.ok(after.length < blocksBefore, `blocks ${blocksBefore} → ${after.length}`)
  t.strictSame(after, sliceKeys(BigInt(slice?.['id'] as string), 39_004, layout.blockSize).sort())
  await fd.flushUsage()
  t.strictSame((await checkReferences(fx.db, fx.store, layout)).problems, [])
  t.strictSame(await fd.compact(ino, 0), { outcome: 'nothing', recordsBefore: 1, recordsAfter: 1 })
})

t.test('compaction gives up when the chunk changes while it works', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout, compactAt: 0 })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  for (let i = 0; i < 4; i++) await fd.write(ino, BigInt(i * 100), Buffer.alloc(100, i + 1), 'file_sync', now)
  let raced = false
  const r = await compactChunk({
    db: fx.db,
    store: fx.store,
    sid: 1n,
    layout,
    sliceIds: new IdBatch(fx.db, COUNTER.nextSlice, 10),
    // While compaction reads, a write lands in the chunk.
    read: async (key, _len, from, length) => {
      if (!raced) {
        raced = true
        await fd.write(ino, 50n, Buffer.alloc(10, 9), 'file_sync', now)
      }
      return fx.store.get(key, from, length)
    },
  }, ino, 0)
  t.equal(r.outcome, 'changed')
  t.equal(await records(fx, ino), 5, 'the chunk keeps its records, the new write included')
  t.equal((await fx.db.query('SELECT * FROM tsnfs_pending_slice')).rowCount, 0, 'the abandoned slice is not pending')
  await fd.flushUsage()
  t.strictSame((await checkReferences(fx.db, fx.store, layout)).problems, [], 'and its blocks are gone')
  const data = await fd.read(ino, 0n, 400, 400n)
  t.strictSame([data[49], data[50], data[59], data[60], data[100]], [1, 9, 9, 1, 2])
})

t.test('a chunk past the record threshold is compacted in the background', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout, compactAt: 4 })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  for (let i = 0; i < 5; i++) await fd.write(ino, BigInt(i * 10), Buffer.alloc(10, i + 1), 'data_sync', now)
  await fd.idle()
  t.equal(await records(fx, ino), 1)
  const data = await fd.read(ino, 0n, 50, 50n)
  t.strictSame([data[0], data[10], data[49]], [1, 2, 5])
})

t.test('without notifications (cache mode per-request): attach and compaction send none, and another server reads every change', async (t) => {
  const fx = await fixture(t)
  const from = refused.length
  // CockroachDB's rules on every statement of this server: no pg_notify, no table modified twice.
  const fd = createFileData({ db: checkedDb(fx.db), store: fx.store, sid: 1n, ...layout, compactAt: 0, notify: false })
  t.teardown(() => fd.close())
  const other = createFileData({ db: fx.db, store: fx.store, sid: 2n, ...layout, notify: false })
  t.teardown(() => other.close())
  const ino = await fx.newFile()
  const expect = Buffer.alloc(40_000)
  for (let i = 0; i < 10; i++) {
    const part = Buffer.alloc(2500, i + 1)
    await fd.write(ino, BigInt(i * 3000), part, 'file_sync', now)
    part.copy(expect, i * 3000)
    // Nobody calls other.invalidate(): it keeps no slice list, so each read sees the new slice.
    const end = BigInt(i * 3000 + 2500)
    t.ok((await other.read(ino, 0n, 40_000, end)).equals(expect.subarray(0, Number(end))), `write ${i} is read by the other server`)
  }
  const size = 29_500n
  t.strictSame(await fd.compact(ino, 0), { outcome: 'compacted', recordsBefore: 10, recordsAfter: 1 })
  t.ok((await other.read(ino, 0n, 40_000, size)).equals(expect.subarray(0, Number(size))), 'and the compacted chunk')
  t.strictSame(refused.slice(from), [], 'no statement CockroachDB refuses was sent')
})
