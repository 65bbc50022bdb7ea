import t from 'tap'
import { TwoGenerationCache } from '../../../vfs/engine/inode/two-generation-cache.ts'

t.test('two-generation cache: bounded, keeps what was used recently, drops the rest', async (t) => {
  const c = new TwoGenerationCache<number, string>(8)
  for (let i = 0; i < 100; i++) {
    c.set(i, `v${i}`)
    t.ok(c.size <= 8, `size ${c.size} after ${i + 1} sets`)
  }
  t.equal(c.get(99), 'v99', 'the newest is kept')
  t.equal(c.get(0), undefined, 'the oldest is gone')
  // A key used in every round survives any number of newer keys passing through.
  const d = new TwoGenerationCache<number, string>(8)
  d.set(-1, 'hot')
  for (let i = 0; i < 100; i++) {
    d.set(i, `v${i}`)
    t.equal(d.get(-1), 'hot', `the hot key is still there after ${i + 1} others`)
  }
})

t.test('two-generation cache: set replaces, delete and clear remove from both generations', async (t) => {
  const c = new TwoGenerationCache<string, number>(4)
  c.set('a', 1)
  c.set('b', 2)
  c.set('c', 3) // 'a' and 'b' are now the old generation
  c.set('a', 10)
  t.equal(c.get('a'), 10)
  c.delete('b')
  t.equal(c.get('b'), undefined)
  t.equal(c.size, 2)
  c.clear()
  t.equal(c.size, 0)
  t.equal(c.get('c'), undefined)
})

t.test("cached inodes' i_block is memory of its own, never a slice of Node's 8 KiB pool (it would pin the slab)", async (t) => {
  const { decodeInode } = await import('../../../vfs/engine/format/inode.ts')
  const { copyInode } = await import('../../../vfs/engine/inode/inode-table.ts')
  const raw = Buffer.alloc(256)
  raw.writeUInt16LE(0x81a4, 0)
  raw.writeUInt16LE(32, 0x80)
  raw.fill(7, 0x28, 0x28 + 60)
  const decoded = decodeInode(raw, 0, 256, true)
  t.equal(decoded.block.buffer.byteLength, 60, 'decoded: its own 60 bytes')
  t.same([...decoded.block], Array(60).fill(7))
  const kept = copyInode(decoded, true)
  t.equal(kept.block.buffer.byteLength, 60, 'a copy for the cache: its own 60 bytes')
  t.not(kept.block.buffer, decoded.block.buffer)
  const short = copyInode(decoded)
  short.block[0] = 9
  t.equal(decoded.block[0], 7, 'a caller changing its copy leaves the original alone')
})
