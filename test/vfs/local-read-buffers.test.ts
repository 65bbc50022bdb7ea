/* READ buffers lent by the local backend: reuse after release, never while lent. */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ReadBuffers } from '../../vfs/memory/read-buffers.ts'
import { localDirs, openLocal } from './local-helpers.ts'

const MiB = 1024 * 1024
const OWNER = { uid: 0, gid: 0 }

t.test('a released buffer is reused; a lent one never', (t) => {
  const pool = new ReadBuffers(1024, { maxBytes: 2 * 1024 })
  const a = pool.take(1024)
  const b = pool.take(1000)
  t.not(a.buf, b.buf, 'two loans, two buffers')
  t.equal(a.buf.length, 1024)
  a.release?.()
  t.equal(pool.idle, 1)
  const c = pool.take(900)
  t.equal(c.buf, a.buf, 'the released buffer comes back')
  t.equal(pool.idle, 0)
  a.release?.()
  t.equal(pool.idle, 0, 'a second release of the same loan does nothing')
  b.release?.()
  c.release?.()
  t.equal(pool.idle, 2)
  pool.take(1024).release?.()
  const d = pool.take(1024)
  const e = pool.take(1024)
  const f = pool.take(1024)
  d.release?.()
  e.release?.()
  f.release?.()
  t.equal(pool.idle, 2, 'at most max idle buffers are kept')
  t.end()
})

t.test('small and oversized reads get their own buffers, outside the pool', (t) => {
  const pool = new ReadBuffers(1024, { maxBytes: 4 * 1024 })
  const small = pool.take(100)
  t.equal(small.buf.length, 100)
  t.equal(small.release, null)
  const big = pool.take(4096)
  t.equal(big.buf.length, 4096)
  t.equal(big.release, null)
  t.end()
})

t.test('LocalVfs.read lends large reads; data stays intact until released', async (t) => {
  const dirs = localDirs()
  const vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const one = Buffer.alloc(MiB, 0x61)
  const two = Buffer.alloc(MiB, 0x62)
  fs.writeFileSync(path.join(dirs.root, 'f'), Buffer.concat([one, two]))
  const { ref } = await vfs.lookup(vfs.root(), Buffer.from('f'))
  const r1 = await vfs.read(ref, 0n, MiB)
  t.ok(r1.data.equals(one))
  t.type(r1.release, 'function', 'a 1 MiB read is lent')
  const r2 = await vfs.read(ref, BigInt(MiB), MiB)
  t.ok(r2.data.equals(two))
  t.ok(r1.data.equals(one), 'a lent buffer is not reused by the next read')
  t.equal(r2.eof, true)
  r1.release?.()
  const r3 = await vfs.read(ref, BigInt(MiB), MiB)
  t.ok(r3.data.equals(two))
  t.ok(r2.data.equals(two), 'still intact: r3 got the buffer r1 gave back')
  r2.release?.()
  r3.release?.()
  const small = await vfs.read(ref, 0n, 4096)
  t.ok(small.data.equals(one.subarray(0, 4096)))
  t.equal(small.release, undefined, 'small reads are not lent')
  const past = await vfs.read(ref, BigInt(3 * MiB), MiB)
  t.equal(past.data.length, 0)
  t.equal(past.eof, true)
  t.equal(past.release, undefined, 'nothing read: nothing lent')
  await t.rejects(vfs.read(vfs.root(), 0n, MiB), { code: 'EINVAL' })
  const made = await vfs.create(vfs.root(), Buffer.from('g'), { how: 'unchecked', attr: {} }, OWNER)
  const empty = await vfs.read(made.ref, 0n, MiB)
  t.equal(empty.data.length, 0)
  t.equal(empty.eof, true)
})

t.test('idle buffers are bounded in bytes and trim() lets them go down to the floor', (t) => {
  const pool = new ReadBuffers(1024, { maxBytes: 3 * 1024, floorBytes: 1024 })
  const loans = [pool.take(1024), pool.take(1024), pool.take(1024), pool.take(1024)]
  for (const l of loans) l.release?.()
  t.equal(pool.idle, 3, 'four given back, three kept')
  t.equal(pool.bytes, 3 * 1024)
  t.equal(pool.trim(), 2 * 1024)
  t.equal(pool.idle, 1)
  t.equal(pool.bytes, 1024)
  t.end()
})
