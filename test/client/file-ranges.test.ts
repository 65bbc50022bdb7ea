import t from 'tap'
import { addRange, cutRange, gapsOf } from '../../client/file-ranges.ts'
import type { Range } from '../../client/file-ranges.ts'
import { FileState, cutSegments, dropLease, overlay, supersedeInflight } from '../../client/file-state.ts'
import type { Lease, Segment } from '../../client/file-state.ts'
import { BufferPool } from '../../client/rpc/buffer-pool.ts'
import { blockSizeOf, resolveFileDataOptions } from '../../client/file-options.ts'

t.test('ranges: add merges and counts new bytes, cut splits, gaps', async t => {
  const l: Range[] = []
  t.equal(addRange(l, 10, 20), 10)
  t.equal(addRange(l, 30, 40), 10)
  t.equal(addRange(l, 15, 35), 10, 'only the gap is new')
  t.strictSame(l, [{ start: 10, end: 40 }])
  t.equal(addRange(l, 40, 50), 10, 'adjacent ranges merge')
  t.strictSame(l, [{ start: 10, end: 50 }])
  t.equal(cutRange(l, 20, 30), 10)
  t.strictSame(l, [{ start: 10, end: 20 }, { start: 30, end: 50 }])
  t.strictSame(gapsOf(l, 0, 60), [{ start: 0, end: 10 }, { start: 20, end: 30 }, { start: 50, end: 60 }])
  t.strictSame(gapsOf(l, 12, 18), [])
  t.equal(addRange(l, 5, 5), 0, 'empty range')
})

const seg = (offset: number, s: string, seq: number): Segment => ({ offset, data: Buffer.from(s), seq, verf: null, superseded: [], done: null, lease: null })

t.test('segments: newer writes trim older ones, keeping the head object', async t => {
  const a = seg(0, 'aaaaaaaaaa', 1)
  const list = [a]
  t.equal(cutSegments(list, 3, 6), 3)
  t.equal(list.length, 2)
  t.equal(list[0], a, 'the head stays the same object (a COMMIT snapshot still finds it)')
  t.strictSame(list.map(s => [s.offset, s.data.toString()]), [[0, 'aaa'], [6, 'aaaa']])
  t.equal(cutSegments(list, 0, 100), 7)
  t.equal(list.length, 0)
})

t.test('a leased buffer goes back to its pool when the last of its bytes is cut', async t => {
  const pool = new BufferPool(4, 16)
  const buf = pool.take(10)
  buf.write('abcdefghij')
  const lease: Lease = { bytes: 10, give: () => { pool.give(buf) } }
  const list: Segment[] = [{ ...seg(100, '', 1), data: buf, lease }]
  t.equal(cutSegments(list, 103, 105), 2)
  t.equal(lease.bytes, 8)
  t.equal(list.length, 2, 'head and tail share the lease')
  t.equal(pool.freeSlabs, 0)
  t.equal(cutSegments(list, 0, 104), 3)
  t.equal(pool.freeSlabs, 0, 'the tail still holds 5 bytes')
  dropLease(lease, 5)
  t.equal(pool.freeSlabs, 1, 'back in the pool at zero')
  t.equal(pool.owns(buf), false)
  dropLease(lease, 1)
  t.equal(pool.freeSlabs, 1, 'given back once')
  t.equal(pool.take(16).buffer, buf.buffer, 'and lent again')
})

t.test('overlay: unstable, then in flight by age, then dirty', async t => {
  const f = new FileState(Buffer.from('fh'), '6668')
  f.unstable.push(seg(2, 'UU', 1))
  const s1 = seg(3, 'II', 2)
  f.inflight.add(s1)
  f.dirty.set(0, { index: 0, buf: Buffer.from('....D.....'), ranges: [{ start: 4, end: 5 }], lease: null })
  const out = overlay(f, 0, 10, Buffer.from('server'))
  t.equal(out.toString(), 'seUIDr')
  t.equal(overlay(f, 1, 10, Buffer.alloc(0)).length, 0, 'other blocks untouched')
  f.dirty.set(0, { index: 0, buf: Buffer.from('.........X'), ranges: [{ start: 9, end: 10 }], lease: null })
  t.equal(overlay(f, 0, 10, Buffer.from('ab')).toString('latin1'), 'abUII\0\0\0\0X', 'grows past the server data with zeros')
  supersedeInflight(f, 4, 100)
  t.strictSame(s1.superseded, [{ start: 4, end: 5 }])
  t.equal(f.sizeWith(3n), 3n)
  f.writtenEnd = 10
  t.equal(f.sizeWith(3n), 10n)
})

t.test('options: block size from rsize and wsize, defaults', async t => {
  t.equal(blockSizeOf(1 << 20, 1 << 20), 1 << 20)
  t.equal(blockSizeOf(65536, 32768), 32768)
  t.equal(blockSizeOf(10000, 10000), 8192, 'rounded down to 4 KiB')
  t.equal(blockSizeOf(1024, 4096), 1024, 'tiny sizes kept')
  const o = resolveFileDataOptions({}, 65536, 65536)
  t.equal(o.readaheadBlocks, 16)
  t.equal(o.blockCacheBytes, 64 * 1024 * 1024)
  t.equal(resolveFileDataOptions({ readahead: 0 }, 65536, 65536).readaheadBlocks, 0)
})
