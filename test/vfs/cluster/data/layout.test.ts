import t from 'tap'
import { blockKey, parseBlockKey, sliceKeys } from '../../../../vfs/cluster/data/keys.ts'
import { dataExtent, mergeSlices } from '../../../../vfs/cluster/data/read-merge.ts'
import { decodeSlices, encodeSlices, SLICE_RECORD_BYTES } from '../../../../vfs/cluster/data/slice.ts'
import { StagedFile, Staging } from '../../../../vfs/cluster/data/staging.ts'
import { VfsError } from '../../../../vfs/errors.ts'

t.test('a slice record is 24 big-endian bytes: pos u32, id u64, size u32, off u32, len u32', async (t) => {
  const rec = { pos: 0x01020304, id: 0x05060708090a0b0cn, size: 0x0d0e0f10, off: 0x11, len: 0x12 }
  const b = encodeSlices([rec])
  t.equal(b.length, SLICE_RECORD_BYTES)
  t.equal(b.toString('hex'), '01020304' + '05060708090a0b0c' + '0d0e0f10' + '00000011' + '00000012')
  t.strictSame(decodeSlices(Buffer.concat([b, encodeSlices([{ pos: 0, id: 0n, size: 5, off: 0, len: 5 }])])), [rec, { pos: 0, id: 0n, size: 5, off: 0, len: 5 }])
  t.throws(() => decodeSlices(Buffer.alloc(25)), { code: 'EIO' }, 'a partial record is corrupt')
  const bad = encodeSlices([{ pos: 0, id: 9n, size: 10, off: 5, len: 6 }])
  t.throws(() => decodeSlices(bad, 'inode 3 chunk 0'), new VfsError('EIO', 'inode 3 chunk 0: slice 9 record [5, +6) is past its size 10'))
})

t.test('block keys spread over 256 prefixes and name id, index and length', async (t) => {
  t.equal(blockKey(0x1234n, 2, 4096), 'chunks/34/4660_2_4096')
  t.strictSame(parseBlockKey('chunks/34/4660_2_4096'), { id: 0x1234n, index: 2, len: 4096 })
  t.equal(parseBlockKey('chunks/35/4660_2_4096'), null, 'wrong prefix for the id')
  t.equal(parseBlockKey('chunks/34/4660_2'), null)
  t.equal(parseBlockKey('chunks/ff/99999999999999999999_0_1'), null, 'past 64 bits')
  t.strictSame(sliceKeys(7n, 10, 4), ['chunks/07/7_0_4', 'chunks/07/7_1_4', 'chunks/07/7_2_2'])
  t.strictSame(sliceKeys(7n, 8, 4), ['chunks/07/7_0_4', 'chunks/07/7_1_4'])
})

t.test('merging: later records cover earlier ones; holes and id 0 are zeros', async (t) => {
  const recs = [
    { pos: 0, id: 1n, size: 100, off: 0, len: 100 },
    { pos: 20, id: 2n, size: 10, off: 0, len: 10 },
    { pos: 50, id: 0n, size: 50, off: 0, len: 50 },
    { pos: 60, id: 3n, size: 30, off: 5, len: 10 },
  ]
  t.strictSame(mergeSlices(recs, 0, 120).map((s) => [s.pos, s.len, s.id, s.off]), [
    [0, 20, 1n, 0],
    [20, 10, 2n, 0],
    [30, 20, 1n, 30],
    [50, 10, 0n, 0],
    [60, 10, 3n, 5],
    [70, 30, 0n, 0],
    [100, 20, 0n, 0],
  ])
  t.strictSame(mergeSlices(recs, 25, 65).map((s) => [s.pos, s.len, s.id, s.off]), [
    [25, 5, 2n, 5],
    [30, 20, 1n, 30],
    [50, 10, 0n, 0],
    [60, 5, 3n, 5],
  ], 'a window clips and shifts offsets')
  t.strictSame(dataExtent(mergeSlices(recs, 0, 200)), { start: 0, end: 70 })
  t.equal(dataExtent(mergeSlices([{ pos: 0, id: 0n, size: 9, off: 0, len: 9 }], 0, 10)), null)
})

t.test('staging trims what a write covers and joins runs once, cut at chunk boundaries', async (t) => {
  const f = new StagedFile()
  f.put(10, Buffer.from('aaaaaaaaaa'))
  f.put(20, Buffer.from('bbbbb'))
  f.put(15, Buffer.from('XXXXXXX'))
  f.put(0, Buffer.from('zz'))
  t.strictSame(f.ranges.map((r) => [r.off, r.data.toString()]), [[0, 'zz'], [10, 'aaaaa'], [15, 'XXXXXXX'], [22, 'bbb']])
  t.equal(f.bytes, 17)
  t.equal(f.end, 25)
  const out = Buffer.alloc(12, '.')
  f.overlay(out, 8)
  t.equal(out.toString(), '..aaaaaXXXXX')
  t.strictSame(f.runs(16).map((r) => [r.idx, r.pos, r.data.toString()]), [[0, 0, 'zz'], [0, 10, 'aaaaaX'], [1, 0, 'XXXXXXbbb']])
  f.put(12, Buffer.from('M'))
  t.strictSame(f.ranges.map((r) => [r.off, r.data.toString()]), [[0, 'zz'], [10, 'aa'], [12, 'M'], [13, 'aa'], [15, 'XXXXXXX'], [22, 'bbb']], 'a write inside a range splits it')
  f.put(0, Buffer.alloc(30, 'w'))
  t.strictSame(f.ranges.map((r) => [r.off, r.data.length]), [[0, 30]], 'a covering write replaces everything')
  t.equal(f.bytes, 30)

  const s = new Staging()
  s.put(1n, 0, Buffer.from('old'), { sec: 1, nsec: 0 }, 100)
  const failed = s.take(1n)
  t.equal(s.total, 0)
  s.put(1n, 1, Buffer.from('N'), { sec: 2, nsec: 0 }, 200)
  if (failed !== undefined) s.restore(1n, failed)
  const back = Buffer.alloc(3)
  s.files.get(1n)?.overlay(back, 0)
  t.equal(back.toString(), 'oNd', 'a restored flush lies under newer writes')
  t.equal(s.total, 3)
  t.strictSame(s.files.get(1n)?.mtime, { sec: 2, nsec: 0 })
})
