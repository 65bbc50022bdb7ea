import t from 'tap'
import { ChunkPool } from '../../vfs/memory/chunk-pool.ts'
import { CHUNK_SIZE, FileData } from '../../vfs/memory/file-data.ts'

t.test('freed full chunks are reused, never showing their old bytes', async (t) => {
  const pool = new ChunkPool(CHUNK_SIZE, { maxBytes: 4 * CHUNK_SIZE })
  const a = new FileData(pool)
  a.write(0n, Buffer.alloc(2 * CHUNK_SIZE, 0xaa))
  a.clear()
  t.equal(pool.available, 2, 'both chunks of the removed file are kept')
  const b = new FileData(pool)
  b.write(0n, Buffer.alloc(CHUNK_SIZE, 0xbb)) // a whole chunk: takes one from the pool
  t.equal(pool.available, 1)
  t.ok(b.read(0n, CHUNK_SIZE).equals(Buffer.alloc(CHUNK_SIZE, 0xbb)))
  b.write(BigInt(CHUNK_SIZE) + 10n, Buffer.from('x')) // a partial chunk: the rest reads as zeros
  const tail = b.read(BigInt(CHUNK_SIZE), 11)
  t.ok(tail.equals(Buffer.concat([Buffer.alloc(10), Buffer.from('x')])), 'no byte of the old file shows through')
})

t.test('a chunk lent to a reply is not reused', async (t) => {
  const pool = new ChunkPool(CHUNK_SIZE, { maxBytes: 4 * CHUNK_SIZE })
  const a = new FileData(pool)
  a.write(0n, Buffer.alloc(CHUNK_SIZE, 1))
  const view = a.read(0n, CHUNK_SIZE) // a view of the chunk (large reads are not copied)
  a.truncate(0n)
  t.equal(pool.available, 0, 'the lent chunk is not pooled')
  const b = new FileData(pool)
  b.write(0n, Buffer.alloc(CHUNK_SIZE, 2))
  t.equal(view[0], 1, 'the reply still sees the bytes it was given')
})

t.test('the pool is bounded and keeps only full chunks', async (t) => {
  const pool = new ChunkPool(CHUNK_SIZE, { maxBytes: CHUNK_SIZE })
  pool.give(Buffer.alloc(CHUNK_SIZE))
  pool.give(Buffer.alloc(CHUNK_SIZE))
  pool.give(Buffer.alloc(10))
  t.equal(pool.available, 1)
  t.ok(pool.take())
  t.equal(pool.take(), undefined)
})

t.test('a lent chunk returns to the pool when its last loan ends, not before', async (t) => {
  const pool = new ChunkPool(CHUNK_SIZE, { maxBytes: 4 * CHUNK_SIZE })
  const a = new FileData(pool)
  a.write(0n, Buffer.alloc(CHUNK_SIZE, 1))
  const first = a.readLent(0n, CHUNK_SIZE)
  const second = a.readLent(0n, 64 * 1024)
  if (first.release === undefined || second.release === undefined) throw new Error('large reads must be lent')
  a.clear()
  t.equal(pool.available, 0, 'on loan twice: kept out of the pool')
  first.release()
  first.release() // a second call is a no-op, not a second loan ending
  t.equal(pool.available, 0, 'one loan still open')
  second.release()
  t.equal(pool.available, 1, 'the last loan ended: pooled')
  t.equal(first.data[0], 1, 'the bytes were never changed while lent')
})

t.test('a chunk copied on write is pooled once the reply that saw it is sent', async (t) => {
  const pool = new ChunkPool(CHUNK_SIZE, { maxBytes: 4 * CHUNK_SIZE })
  const a = new FileData(pool)
  a.write(0n, Buffer.alloc(CHUNK_SIZE, 1))
  const lent = a.readLent(0n, CHUNK_SIZE)
  a.write(0n, Buffer.from('x')) // the lent chunk is replaced by a copy
  t.equal(lent.data[0], 1, 'the reply keeps its bytes')
  t.equal(a.read(0n, 1).toString(), 'x')
  t.equal(pool.available, 0)
  lent.release?.()
  t.equal(pool.available, 1, 'the old chunk is reusable now')
  a.write(0n, Buffer.from('y')) // the current chunk is not lent: changed in place, nothing pooled
  t.equal(pool.available, 1)
})

t.test('small reads are copies, not loans', async (t) => {
  const a = new FileData(new ChunkPool(CHUNK_SIZE, { maxBytes: 4 * CHUNK_SIZE }))
  a.write(0n, Buffer.alloc(CHUNK_SIZE, 3))
  const r = a.readLent(0n, 4096)
  t.equal(r.release, undefined)
  t.equal(r.data[0], 3)
})

t.test('the pool is bounded in bytes (whole chunks) and trim() keeps only the floor', async (t) => {
  const pool = new ChunkPool(CHUNK_SIZE, { maxBytes: 3.5 * CHUNK_SIZE, floorBytes: CHUNK_SIZE })
  for (let i = 0; i < 6; i++) pool.give(Buffer.alloc(CHUNK_SIZE))
  t.equal(pool.available, 3, '3.5 chunks of bytes keep 3 chunks')
  t.equal(pool.bytes, 3 * CHUNK_SIZE)
  t.equal(pool.trim(), 2 * CHUNK_SIZE, 'two chunks let go')
  t.equal(pool.available, 1, 'the floor stays')
  t.equal(pool.trim(), 0, 'nothing more above the floor')
  t.ok(pool.take())
  t.equal(pool.take(), undefined)
  t.equal(pool.misses, 1, 'a take from an empty pool counts a miss')
  const none = new ChunkPool(CHUNK_SIZE, { maxBytes: 0 })
  none.give(Buffer.alloc(CHUNK_SIZE))
  t.equal(none.available, 0, 'maxBytes 0: nothing is kept')
})
