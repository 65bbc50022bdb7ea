import t from 'tap'
import { CHUNK_SIZE, FileData } from '../../vfs/memory/file-data.ts'

t.test('a large read is a view that later writes do not change (copy on write)', async (t) => {
  const f = new FileData()
  f.write(0n, Buffer.alloc(CHUNK_SIZE, 1))
  const view = f.read(0n, 64 * 1024)
  t.equal(view.length, 64 * 1024)
  f.write(100n, Buffer.alloc(10, 9))
  f.truncate(50n)
  t.equal(view[100], 1, 'the lent bytes are unchanged')
  t.equal(view[60], 1)
  t.strictSame([...f.read(0n, 4)], [1, 1, 1, 1])
  t.equal(f.read(40n, 100).length, 10)
  f.truncate(200n)
  t.strictSame([...f.read(48n, 4)], [1, 1, 0, 0], 'truncate zeroed the cut-off tail')
})

t.test('reads across chunks, holes and short chunks fill zeros', async (t) => {
  const f = new FileData()
  f.write(BigInt(CHUNK_SIZE - 2), Buffer.from([1, 2, 3, 4]))
  f.write(BigInt(3 * CHUNK_SIZE), Buffer.from([7]))
  const r = f.read(BigInt(CHUNK_SIZE - 4), 8)
  t.strictSame([...r], [0, 0, 1, 2, 3, 4, 0, 0])
  const hole = f.read(BigInt(2 * CHUNK_SIZE), 64 * 1024)
  t.equal(hole.length, 64 * 1024)
  t.ok(hole.every((b) => b === 0))
  t.equal(f.size, BigInt(3 * CHUNK_SIZE + 1))
})

t.test('used grows with the chunks and growthFor predicts it', async (t) => {
  const f = new FileData()
  const g = f.growthFor(0n, 5000)
  f.write(0n, Buffer.alloc(5000, 3))
  t.equal(f.used, g)
  t.ok(f.used >= 5000)
  const g2 = f.growthFor(5000n, 5000)
  f.write(5000n, Buffer.alloc(5000, 4))
  t.equal(f.used, g + g2)
  t.strictSame([...f.read(4998n, 4)], [3, 3, 4, 4])
  f.clear()
  t.equal(f.used, 0)
  t.equal(f.read(0n, 10).length, 0)
})
