import t from 'tap'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { blockKey } from '../../../../vfs/cluster/data/keys.ts'
import { decodeSlices } from '../../../../vfs/cluster/data/slice.ts'
import { VfsError } from '../../../../vfs/errors.ts'
import { COUNTER } from '../../../../vfs/cluster/schema.ts'
import { counter, fixture, nodeSize } from './setup.ts'

const now = { sec: 1_700_000_000, nsec: 5 }
const small = { chunkSize: 64 * 1024, blockSize: 16 * 1024 }

t.test('a FILE_SYNC write is in the store and the database when it resolves', async (t) => {
  const fx = await fixture(t)
  const changed: bigint[] = []
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, onChanged: (i) => changed.push(...i), ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  const data = Buffer.alloc(40_000, 0x5a)
  await fd.write(ino, 1000n, data, 'file_sync', now)
  t.equal(fd.staged(ino), undefined, 'nothing left staged')
  t.equal(await nodeSize(fx.db, ino), 41_000n)
  const node = await fx.db.query('SELECT mtime_sec, mtime_nsec, ctime_sec FROM tsnfs_node WHERE inode = $1', [ino])
  t.strictSame(node.rows[0], { mtime_sec: String(now.sec), mtime_nsec: now.nsec, ctime_sec: String(now.sec) })
  const rows = await fx.db.query('SELECT idx, slices FROM tsnfs_chunk WHERE inode = $1', [ino])
  t.equal(rows.rowCount, 1)
  const recs = decodeSlices(rows.rows[0]?.['slices'] as Buffer)
  t.equal(recs.length, 1)
  t.match(recs[0], { pos: 1000, size: 40_000, off: 0, len: 40_000 })
  t.equal(fx.store.puts, 3, '40000 bytes in 16 KiB blocks: 3 blocks')
  t.equal((await fx.db.query('SELECT * FROM tsnfs_pending_slice')).rowCount, 0, 'the pending row went with the attach')
  const ref = await fx.db.query('SELECT refs, size FROM tsnfs_slice_ref')
  t.strictSame(ref.rows, [{ refs: 1, size: 40_000 }])
  await fd.flushUsage()
  t.equal(await counter(fx.db, COUNTER.usedBytes), 40_000)
  t.strictSame(changed, [ino])
  const back = await fd.read(ino, 0n, 50_000, 41_000n)
  t.equal(back.length, 41_000, 'never past size')
  t.ok(back.subarray(0, 1000).every((b) => b === 0), 'the hole before reads zeros')
  t.ok(back.subarray(1000).equals(data))
})

t.test('UNSTABLE writes stay in memory until flush; reads see them on top', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  await fd.write(ino, 0n, Buffer.from('hello world'), 'file_sync', now)
  const later = { sec: now.sec + 10, nsec: 0 }
  await fd.write(ino, 6n, Buffer.from('there, you'), 'unstable', later)
  t.strictSame(fd.staged(ino), { size: 16n, mtime: later })
  t.equal(fx.store.puts, 1, 'no upload for the unstable write')
  t.equal((await fd.read(ino, 0n, 100, 16n)).toString(), 'hello there, you')
  t.equal(await nodeSize(fx.db, ino), 11n)
  await fd.flush(ino)
  t.equal(fd.staged(ino), undefined)
  t.equal(await nodeSize(fx.db, ino), 16n)
  t.equal((await fd.read(ino, 0n, 100, 16n)).toString(), 'hello there, you')
  const other = createFileData({ db: fx.db, store: fx.store, sid: 8n, ...small })
  t.teardown(() => other.close())
  t.equal((await other.read(ino, 0n, 100, 16n)).toString(), 'hello there, you', 'another server reads it from the store')
  await fd.flush(ino)
  t.equal(fx.store.puts, 2, 'an empty flush uploads nothing')
})

t.test('a write crossing a chunk boundary becomes one slice per chunk', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  const data = Buffer.alloc(small.chunkSize + 100)
  for (let i = 0; i < data.length; i++) data[i] = i % 251
  await fd.write(ino, BigInt(small.chunkSize - 50), data, 'data_sync', now)
  const rows = await fx.db.query('SELECT idx, slices FROM tsnfs_chunk WHERE inode = $1 ORDER BY idx', [ino])
  t.strictSame(rows.rows.map((r) => [r['idx'], decodeSlices(r['slices'] as Buffer).map((s) => [s.pos, s.len])]), [
    [0, [[small.chunkSize - 50, 50]]],
    [1, [[0, small.chunkSize]]],
    [2, [[0, 50]]],
  ])
  const size = BigInt(2 * small.chunkSize + 50)
  t.equal(await nodeSize(fx.db, ino), size)
  const back = await fd.read(ino, BigInt(small.chunkSize - 50), data.length + 10, size)
  t.ok(back.equals(data))
})

t.test('shrink then grow reads zeros; whole chunks past the size are released', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  const total = 3 * small.chunkSize
  await fd.write(ino, 0n, Buffer.alloc(total, 0x11), 'file_sync', now)
  await fd.flushUsage()
  t.equal(await counter(fx.db, COUNTER.usedBytes), total)
  const cut = BigInt(small.chunkSize + 10)
  await fx.db.transaction(async (tx) => {
    await fd.truncate(tx, ino, BigInt(total), cut)
    await tx.query('UPDATE tsnfs_node SET size = $2 WHERE inode = $1', [ino, cut])
  })
  const idx = await fx.db.query('SELECT idx FROM tsnfs_chunk WHERE inode = $1 ORDER BY idx', [ino])
  t.strictSame(idx.rows.map((r) => r['idx']), [0, 1], 'chunk 2 is gone')
  await fd.reap()
  await fd.flushUsage()
  t.equal(await counter(fx.db, COUNTER.usedBytes), 2 * small.chunkSize, 'chunk 2 slice no longer counted')
  t.equal((await fx.db.query('SELECT id FROM tsnfs_slice_ref')).rowCount, 2, 'its ref row reaped')
  const keys: string[] = []
  for await (const o of fx.store.list('chunks/')) keys.push(o.key)
  t.equal(keys.length, 8, 'its 4 blocks deleted, 8 remain')
  await fx.db.query('UPDATE tsnfs_node SET size = $2 WHERE inode = $1', [ino, total])
  const back = await fd.read(ino, 0n, total, BigInt(total))
  t.ok(back.subarray(0, Number(cut)).every((b) => b === 0x11))
  t.ok(back.subarray(Number(cut)).every((b) => b === 0), 'past the cut reads zeros after growing again')
})

t.test('release drops every chunk; the blocks go after the commit', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  await fd.write(ino, 0n, Buffer.alloc(100_000, 1), 'file_sync', now)
  await fd.write(ino, 5n, Buffer.alloc(10, 2), 'unstable', now)
  await fx.db.transaction((tx) => fd.release(tx, ino))
  t.equal(fd.staged(ino), undefined, 'staged bytes forgotten')
  t.equal((await fx.db.query('SELECT * FROM tsnfs_chunk')).rowCount, 0)
  t.strictSame((await fx.db.query('SELECT DISTINCT refs FROM tsnfs_slice_ref')).rows, [{ refs: 0 }])
  const reaped = await fd.reap()
  t.equal(reaped.slices, 2)
  t.equal(reaped.bytes, 100_000)
  t.equal((await fx.db.query('SELECT * FROM tsnfs_slice_ref')).rowCount, 0)
  await fd.flushUsage()
  t.equal(await counter(fx.db, COUNTER.usedBytes), 0)
  const left: string[] = []
  for await (const o of fx.store.list('chunks/')) left.push(o.key)
  t.strictSame(left, [])
})

t.test('a block missing from the store reads EIO naming it', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  await fd.write(ino, 0n, Buffer.alloc(20_000, 3), 'file_sync', now)
  const r = await fx.db.query('SELECT id FROM tsnfs_slice_ref')
  const key = blockKey(BigInt(r.rows[0]?.['id'] as string), 1, 20_000 - small.blockSize)
  await rm(join(fx.store.dir, key))
  const first = await fd.read(ino, 0n, 100, 20_000n)
  t.equal(first.length, 100, 'block 0 is still there')
  const err = await fd.read(ino, 19_000n, 100, 20_000n).then(() => null, (e: unknown) => e)
  t.ok(err instanceof VfsError, 'a VfsError')
  t.equal((err as VfsError).code, 'EIO')
  t.match((err as VfsError).message, key, 'the message names the block')
})

t.test('a write past the largest offset is EFBIG', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n })
  t.teardown(() => fd.close())
  await t.rejects(fd.write(5n, 1n << 60n, Buffer.alloc(1), 'unstable', now), { code: 'EFBIG' })
})

t.test('round trips: a FILE_SYNC write is the pending row and one attach statement; a cached re-read is none', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small })
  t.teardown(() => fd.close())
  const ino = await fx.newFile()
  await fd.write(ino, 0n, Buffer.alloc(10, 1), 'file_sync', now) // takes the slice id batch
  const s0 = fx.db.stats()
  await fd.write(ino, 10n, Buffer.alloc(10, 2), 'file_sync', now)
  const s1 = fx.db.stats()
  t.equal(s1.transactions - s0.transactions, 0, 'no multi-statement transaction')
  t.equal(s1.roundTrips - s0.roundTrips, 2, 'pending row + the attach (node, chunk, refs, pending, notify in one statement)')
  t.comment(`write FILE_SYNC: ${s1.roundTrips - s0.roundTrips} round trips`)
  await fd.read(ino, 0n, 20, 20n)
  const s2 = fx.db.stats()
  t.equal(s2.roundTrips - s1.roundTrips, 1, 'a first read fetches the chunk list once')
  const gets = fx.store.gets
  const again = await fd.read(ino, 0n, 20, 20n)
  t.equal(fx.db.stats().roundTrips - s2.roundTrips, 0, 'a re-read asks the database nothing')
  t.equal(fx.store.gets, gets, 'nor the store (the block is cached)')
  t.strictSame([again[9], again[10]], [1, 2])
})

t.test('staged memory is bounded: past stageBytes the oldest file is flushed; idle files flush by themselves', async (t) => {
  const fx = await fixture(t)
  const fd = createFileData({ db: fx.db, store: fx.store, sid: 7n, ...small, stageBytes: 10_000, idleFlushMs: 300 })
  t.teardown(() => fd.close())
  const a = await fx.newFile()
  const b = await fx.newFile()
  await fd.write(a, 0n, Buffer.alloc(6000, 1), 'unstable', now)
  await fd.write(b, 0n, Buffer.alloc(6000, 2), 'unstable', now)
  t.equal(fd.staged(a), undefined, 'a (older) was flushed to make room')
  t.equal(fd.staged(b)?.size, 6000n)
  t.equal(await nodeSize(fx.db, a), 6000n)
  const deadline = Date.now() + 5000
  while (fd.staged(b) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  t.equal(fd.staged(b), undefined, 'b flushed after being idle')
  t.equal(await nodeSize(fx.db, b), 6000n)
})
