/* Small chunks as slots of shared slabs: packed, reused, and an emptied slab back to the pool. */
import t from 'tap'
import { ChunkPool } from '../../vfs/memory/chunk-pool.ts'
import { ChunkStore, SLAB_MAX } from '../../vfs/memory/chunk-store.ts'
import { CHUNK_SIZE, FileData } from '../../vfs/memory/file-data.ts'

const KiB = 1024

t.test('small chunks are slots of one slab; the emptied slab goes back to the pool', async (t) => {
  const pool = new ChunkPool(CHUNK_SIZE, { maxBytes: 4 * CHUNK_SIZE })
  const store = new ChunkStore(pool)
  const a = store.take(8 * KiB)
  const b = store.take(8 * KiB)
  t.equal(a.length, 8 * KiB)
  t.equal(a.buffer, b.buffer, 'two slots of the same slab')
  t.equal(b.byteOffset - a.byteOffset, 8 * KiB, 'packed one after the other')
  t.equal(store.slabBytes, CHUNK_SIZE)
  const c = store.take(12 * KiB)
  t.not(c.buffer, a.buffer, 'another size, another slab')
  t.equal(store.slabBytes, 2 * CHUNK_SIZE)
  store.give(a)
  const again = store.take(8 * KiB)
  t.equal(again.byteOffset, a.byteOffset, 'a freed slot is reused')
  t.equal(again.buffer, a.buffer)
  store.give(again)
  store.give(b)
  t.equal(store.slabBytes, CHUNK_SIZE, 'the 8 KiB slab emptied')
  t.equal(pool.available, 1, 'and went to the pool whole')
  store.give(c)
  t.equal(pool.available, 2)
  const full = store.take(CHUNK_SIZE)
  t.equal(full.length, CHUNK_SIZE)
  t.equal(pool.available, 1, 'a full chunk comes from the pool')
  store.give(full.subarray(0, 8 * KiB))
  t.equal(pool.available, 1, 'a piece of a full chunk is not a slot, and the pool keeps only full chunks')
})

t.test('a slab fills up, then a new one opens; slabs with room are filled before another is taken', async (t) => {
  const store = new ChunkStore(new ChunkPool(CHUNK_SIZE, { maxBytes: 0 }))
  const size = SLAB_MAX
  const per = CHUNK_SIZE / size
  const first = Array.from({ length: per }, () => store.take(size))
  t.equal(new Set(first.map((s) => s.buffer)).size, 1, `${per} slots in one slab`)
  const next = store.take(size)
  t.not(next.buffer, first[0]?.buffer, 'a full slab: the next slot is in a new slab')
  const rest = Array.from({ length: per - 1 }, () => store.take(size))
  t.ok(rest.every((s) => s.buffer === next.buffer), 'the second slab fills up')
  store.give(first[3] as Buffer)
  const reused = store.take(size)
  t.equal(reused.buffer, first[0]?.buffer, 'the slab that had room again is used, no third one')
  t.equal(reused.byteOffset, 3 * size)
  t.equal(store.take(SLAB_MAX + 4 * KiB).buffer.byteLength, SLAB_MAX + 4 * KiB, 'larger chunks are buffers of their own')
})

t.test('small files of a FileData live in slots; removing them empties the slabs', async (t) => {
  const pool = new ChunkPool(CHUNK_SIZE, { maxBytes: 16 * CHUNK_SIZE })
  const files = Array.from({ length: 300 }, (_, i) => {
    const f = new FileData(pool)
    f.write(0n, Buffer.alloc(1 + (i % 3) * 5000, i % 251))
    return f
  })
  files.forEach((f, i) => {
    t.ok(f.read(0n, 20_000).equals(Buffer.alloc(1 + (i % 3) * 5000, i % 251)), `file ${i} intact`)
  })
  // Grow one across slot sizes: copied into a bigger slot, old bytes kept, the rest zero.
  const g = files[0] as FileData
  g.write(20_000n, Buffer.from('end'))
  t.ok(g.read(0n, 1).equals(Buffer.from([0])))
  t.ok(g.read(1n, 19_999).equals(Buffer.alloc(19_999)), 'the gap reads as zeros')
  t.equal(g.read(20_000n, 3).toString(), 'end')
  for (const f of files) f.clear()
  t.equal(pool.available, 5, 'every slab back in the pool: 4, 8, 20 KiB slots one each, 12 KiB two (85 slots a slab)')
})

t.test('what the tree keeps of a request owns its memory (no slice of the shared buffer pool)', async (t) => {
  const { InodeTable } = await import('../../vfs/memory/inode-table.ts')
  const tab = new InodeTable({ capacityBytes: 1n << 30n, maxFiles: 100n })
  const target = Buffer.from('../some/where')
  t.ok(target.buffer.byteLength > target.length, 'Buffer.from of a short string is a pool slice')
  const link = tab.newSymlink(target, 0o777, { uid: 0, gid: 0 }, { sec: 0, nsec: 0 })
  t.ok(link.target.equals(target))
  t.equal(link.target.buffer.byteLength, target.length, 'the symlink target is a copy of its own')
})
