import t from 'tap'
import { RunBuffers } from '../../../vfs/volume/raid5-buffers.ts'

t.test('RunBuffers: a given-back buffer is taken again, by size, up to the cap', async (t) => {
  const pool = new RunBuffers(3 * 1024)
  const a = pool.take(1024)
  const b = pool.take(1024)
  t.equal(a.length, 1024)
  t.not(a, b)
  t.equal(a.byteOffset % 8, 0, '8-byte aligned (an ArrayBuffer of its own)')
  t.equal(a.buffer.byteLength, 1024)
  pool.give([a, b])
  t.equal(pool.keptBytes, 2048)
  t.equal(pool.take(2048).length, 2048, 'another size: a new buffer')
  t.equal(pool.take(1024), b, 'the last given back first')
  t.equal(pool.take(1024), a)
  t.equal(pool.keptBytes, 0)
  pool.give([pool.take(2048), pool.take(2048)])
  t.equal(pool.keptBytes, 2048, 'the second would pass the cap: left to the collector')
})
