import t from 'tap'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { IdBatch } from '../../../../vfs/cluster/ids.ts'
import { compactChunk } from '../../../../vfs/cluster/data/compaction.ts'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { checkReferences } from '../../../../vfs/cluster/data/fsck.ts'
import { collectGarbage } from '../../../../vfs/cluster/data/gc.ts'
import { blockKey, sliceKeys } from '../../../../vfs/cluster/data/keys.ts'
import { processDelfiles, reclaimSession } from '../../../../vfs/cluster/data/reclaim.ts'
import { releaseChunks } from '../../../../vfs/cluster/data/refs.ts'
import { decodeSlices } from '../../../../vfs/cluster/data/slice.ts'
import { recordPending, uploadSlice } from '../../../../vfs/cluster/data/upload.ts'
import { COUNTER } from '../../../../vfs/cluster/schema.ts'
import { counter, fixture, type Fixture } from './setup.ts'

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

t.test('gc deletes only unreferenced objects older than minAgeMs, and finishes slices at refs 0', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout })
  t.teardown(() => fd.close())
  const a = await fx.newFile()
  const b = await fx.newFile()
  await fd.write(a, 0n, Buffer.alloc(20_000, 1), 'file_sync', now)
  await fd.write(b, 0n, Buffer.alloc(5_000, 2), 'file_sync', now)
  // b's chunks dropped by a transaction whose server died before deleting blocks.
  await fx.db.transaction((tx) => releaseChunks(tx, b))
  // An orphan (slice 999999 has no rows) and a pending slice being uploaded right now.
  const orphan = blockKey(999_999n, 0, 3)
  await fx.store.put(orphan, Buffer.from('abc'))
  await fx.db.query(`INSERT INTO tsnfs_session (sid, host, pid, started, heartbeat) VALUES (5, 'h', 1, 0, 0)`)
  await recordPending(fx.db, 5n, [{ id: 888_888n, size: 4 }])
  await uploadSlice(fx.store, 888_888n, Buffer.from('wxyz'), layout.blockSize, 2)
  // A pending slice whose session row is gone (its sweeper died before reclaiming it).
  await recordPending(fx.db, 6n, [{ id: 777_777n, size: 2 }], Date.now() - 10_000)
  await uploadSlice(fx.store, 777_777n, Buffer.from('qq'), layout.blockSize, 2)
  await fx.store.put('chunks/zz/not-a-block', Buffer.from('?'))
  const total = (await keys(fx)).length

  const young = await collectGarbage(fx.db, fx.store, { minAgeMs: 3_600_000, blockSize: layout.blockSize, dryRun: true })
  t.match(young, { orphans: 0, young: 1, foreign: 1, abandonedPending: 0, zeroRefSlices: 1, zeroRefBytes: 5_000, dryRun: true })
  t.equal((await keys(fx)).length, total, 'a dry run deletes nothing')

  const dry = await collectGarbage(fx.db, fx.store, { minAgeMs: 0, blockSize: layout.blockSize, dryRun: true })
  t.match(dry, { orphans: 1, orphanBytes: 3, young: 0, abandonedPending: 1 })
  t.equal((await keys(fx)).length, total)

  const real = await collectGarbage(fx.db, fx.store, { minAgeMs: 0, blockSize: layout.blockSize })
  t.match(real, { orphans: 1, orphanBytes: 3, abandonedPending: 1, zeroRefSlices: 1, zeroRefBytes: 5_000, foreign: 1, dryRun: false })
  t.strictSame((await fx.db.query('SELECT id FROM tsnfs_pending_slice')).rows, [{ id: '888888' }], 'the live session\'s pending row stays')
  const left = await keys(fx)
  t.notOk(left.includes(orphan), 'the orphan is gone')
  t.ok(left.includes(blockKey(888_888n, 0, 4)), 'the pending slice\'s block stays')
  t.ok(left.includes('chunks/zz/not-a-block'), 'foreign keys stay')
  t.notOk(left.includes(blockKey(777_777n, 0, 2)), 'the abandoned upload is gone')
  t.equal(left.length, total - 3, 'b\'s one block, the orphan and the abandoned upload went')
  t.equal((await fd.read(a, 0n, 20_000, 20_000n)).every((x) => x === 1), true, 'a still reads')
  t.equal((await fx.db.query('SELECT * FROM tsnfs_slice_ref WHERE refs = 0')).rowCount, 0)
})

t.test('fsck reports a deleted block, an orphan and a wrong count; nothing on a healthy store', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout })
  t.teardown(() => fd.close())
  const a = await fx.newFile()
  await fd.write(a, 0n, Buffer.alloc(40_000, 1), 'file_sync', now)
  await fd.write(a, 100_000n, Buffer.alloc(100, 2), 'file_sync', now)
  await fd.flushUsage()
  const healthy = await checkReferences(fx.db, fx.store, layout)
  t.strictSame(healthy.problems, [])
  t.match(healthy, { chunks: 2, slices: 2, objects: 4 })

  const ids = (await fx.db.query('SELECT id FROM tsnfs_slice_ref ORDER BY id')).rows.map((r) => BigInt(r['id'] as string))
  const [first, second] = ids as [bigint, bigint]
  const gone = blockKey(first, 1, layout.blockSize)
  await rm(join(fx.store.dir, gone))
  const orphan = blockKey(777n, 0, 5)
  await fx.store.put(orphan, Buffer.from('12345'))
  await fx.db.query('UPDATE tsnfs_slice_ref SET refs = 3 WHERE id = $1', [second])
  await fd.flushUsage()
  const sick = await checkReferences(fx.db, fx.store, layout)
  t.strictSame(sick.problems.map((p) => [p.kind, p.key ?? p.id]).sort(), [
    ['missing-block', gone],
    ['orphan', orphan],
    ['refs-mismatch', second],
  ])
  t.ok(sick.problems.every((p) => p.message.length > 0))
})

t.test('reclaimSession removes a dead server\'s unattached uploads and nothing else', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout })
  t.teardown(() => fd.close())
  const a = await fx.newFile()
  await fd.write(a, 0n, Buffer.alloc(1000, 1), 'file_sync', now)
  // Server 9 announced two slices and uploaded them, then died before attaching.
  const dead = [{ id: 500n, size: 20_000 }, { id: 501n, size: 10 }]
  await recordPending(fx.db, 9n, dead)
  for (const s of dead) await uploadSlice(fx.store, s.id, Buffer.alloc(s.size, 7), layout.blockSize, 2)
  // Server 3 is alive and mid-upload.
  await recordPending(fx.db, 3n, [{ id: 600n, size: 10 }])
  await uploadSlice(fx.store, 600n, Buffer.alloc(10), layout.blockSize, 2)
  t.equal((await keys(fx)).length, 5)
  const r = await reclaimSession(fx.db, fx.store, 9n, layout)
  t.strictSame(r, { slices: 2, blocks: 3 })
  const left = await keys(fx)
  t.equal(left.length, 2)
  t.ok(left.includes(blockKey(600n, 0, 10)))
  t.strictSame((await fx.db.query('SELECT sid FROM tsnfs_pending_slice')).rows, [{ sid: '3' }])
  t.strictSame(await reclaimSession(fx.db, fx.store, 9n, layout), { slices: 0, blocks: 0 }, 'a second pass has nothing to do')
})

t.test('processDelfiles releases the chunks of removed files once', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...layout })
  t.teardown(() => fd.close())
  const a = await fx.newFile()
  const b = await fx.newFile()
  await fd.write(a, 0n, Buffer.alloc(70_000, 1), 'file_sync', now)
  await fd.write(b, 0n, Buffer.alloc(100, 2), 'file_sync', now)
  await fx.db.query('INSERT INTO tsnfs_delfile (inode, size, since) VALUES ($1, 70000, 1)', [a])
  await fx.db.query('UPDATE tsnfs_node SET nlink = 0 WHERE inode = $1', [a])
  const r = await processDelfiles(fx.db, fx.store, { limit: 10, blockSize: layout.blockSize })
  t.strictSame(r, { inodes: 1, slices: 2 })
  t.equal((await fx.db.query('SELECT * FROM tsnfs_delfile')).rowCount, 0)
  t.equal((await fx.db.query('SELECT * FROM tsnfs_chunk WHERE inode = $1', [a])).rowCount, 0)
  t.strictSame((await fx.db.query('SELECT inode FROM tsnfs_node ORDER BY inode')).rows, [{ inode: String(b) }], 'a\'s node row went too')
  t.equal((await keys(fx)).length, 1, 'only b\'s block is left')
  await fd.flushUsage()
  t.equal(await counter(fx.db, COUNTER.usedBytes), 100)
  t.strictSame(await processDelfiles(fx.db, fx.store, { limit: 10, blockSize: layout.blockSize }), { inodes: 0, slices: 0 })
  await fd.flushUsage()
  t.strictSame((await checkReferences(fx.db, fx.store, layout)).problems, [])
})
