/*
 * READ data goes into pooled buffers lent to the server (vfs/memory/read-buffers.ts): a buffer
 * comes back holding the previous reply's bytes, so every byte of a hole must be written as zero
 * by the engine, not assumed.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { READ_BUFFER_SIZE, ReadBuffers } from '../../../vfs/memory/read-buffers.ts'

const owner = { uid: 0, gid: 0 }
const MiB = 2 ** 20

t.test('a pooled buffer reused for a sparse file reads zeros in its holes', async (t) => {
  const mem = new MemoryDevice(64 * MiB)
  await makeFileSystem(mem, { zeroed: true })
  const pool = new ReadBuffers(READ_BUFFER_SIZE, { maxBytes: 4 * MiB })
  const e = await openEngineOn(mem, { readBuffers: pool, commitIntervalMs: 0 })
  t.teardown(() => e.close())
  const full = (await e.create(e.root(), Buffer.from('full'), { how: 'unchecked', attr: {} }, owner)).ref
  await e.write(full, 0n, Buffer.alloc(MiB, 0xab), 'file_sync')
  const sparse = (await e.create(e.root(), Buffer.from('sparse'), { how: 'unchecked', attr: {} }, owner)).ref
  // Data at 256 KiB only; the rest of the first MiB is hole, and the file ends at 1 MiB.
  await e.write(sparse, 256n * 1024n, Buffer.alloc(4096, 0x11), 'file_sync')
  await e.setattr(sparse, { size: BigInt(MiB) })

  const first = await e.read(full, 0n, MiB)
  t.equal(first.data.length, MiB)
  t.ok(first.data.every((b) => b === 0xab), 'the full file reads its bytes')
  t.type(first.release, 'function', 'a 1 MiB read is lent from the pool')
  const used = first.data.buffer
  first.release?.()
  t.equal(pool.idle, 1, 'the buffer is back in the pool')

  const second = await e.read(sparse, 0n, MiB)
  t.equal(second.data.buffer, used, 'the same pooled buffer is reused')
  t.equal(second.data.length, MiB)
  const bad: number[] = []
  for (let i = 0; i < MiB && bad.length < 5; i++) {
    const want = i >= 256 * 1024 && i < 256 * 1024 + 4096 ? 0x11 : 0
    if (second.data[i] !== want) bad.push(i)
  }
  t.strictSame(bad, [], 'holes are zeros and the data is in place, whatever the buffer held')
  second.release?.()

  const small = await e.read(full, 100n, 10)
  t.equal(small.release, undefined, 'a small read gets its own buffer, not a pooled one')
  t.ok(small.data.equals(Buffer.alloc(10, 0xab)))
  const past = await e.read(full, BigInt(2 * MiB), 4096)
  t.equal(past.data.length, 0, 'a read past the end is empty')
  t.equal(past.eof, true)
})
