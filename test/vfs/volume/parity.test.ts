import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { dataIndexOn, dataMember, locate, parityMember, xorInto, xorOf } from '../../../vfs/volume/parity.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'

// md's left-symmetric pictures (drivers/md/raid5.c raid5_compute_sector, ALGORITHM_LEFT_SYMMETRIC):
//   n = 3:  D0 D1 P  | D3 P  D2 | P  D4 D5
//   n = 4:  D0 D1 D2 P | D4 D5 P D3 | D8 P D6 D7 | P D9 D10 D11
t.test('left-symmetric: the member of each of the first 2n units, and each stripe\'s parity', async (t) => {
  const unit = 16
  const n3 = [0, 1, 2, 0, 1, 2] // units 0..5
  t.strictSame(n3.map((_, u) => locate(u * unit, 3, unit).member), [0, 1, 2, 0, 1, 2])
  t.strictSame(
    n3.map((_, u) => locate(u * unit + 5, 3, unit)),
    [
      { stripe: 0, dataIndex: 0, member: 0, memberOffset: 5 },
      { stripe: 0, dataIndex: 1, member: 1, memberOffset: 5 },
      { stripe: 1, dataIndex: 0, member: 2, memberOffset: 21 },
      { stripe: 1, dataIndex: 1, member: 0, memberOffset: 21 },
      { stripe: 2, dataIndex: 0, member: 1, memberOffset: 37 },
      { stripe: 2, dataIndex: 1, member: 2, memberOffset: 37 },
    ],
  )
  t.strictSame([0, 1, 2, 3].map((s) => parityMember(s, 3)), [2, 1, 0, 2])
  t.strictSame(
    Array.from({ length: 8 }, (_, u) => locate(u * unit, 4, unit)).map((p) => [p.stripe, p.member]),
    [[0, 0], [0, 1], [0, 2], [1, 3], [1, 0], [1, 1], [2, 2], [2, 3]],
  )
  t.strictSame([0, 1, 2, 3, 4].map((s) => parityMember(s, 4)), [3, 2, 1, 0, 3])
  t.equal(locate(13 * unit + 7, 4, unit).memberOffset, 4 * unit + 7, 'unit 13 of n = 4: stripe 4, 7 bytes in')
  for (const n of [3, 4, 5]) {
    for (let s = 0; s < 2 * n; s++) {
      const seen = new Set([parityMember(s, n)])
      for (let d = 0; d < n - 1; d++) {
        const m = dataMember(s, d, n)
        seen.add(m)
        t.equal(dataIndexOn(s, m, n), d)
      }
      t.equal(seen.size, n, `n ${n} stripe ${s}: every member holds exactly one unit`)
      t.equal(dataIndexOn(s, parityMember(s, n), n), -1)
    }
  }
})

t.test('xorInto: exact bytes, aligned words and ragged tails, short sources refused', async (t) => {
  const d0 = Buffer.from([0x01, 0x02, 0x03, 0x04, 0x05])
  const d1 = Buffer.from([0xf0, 0x0f, 0xaa, 0x55, 0xff])
  const p = Buffer.alloc(5)
  xorInto(p, d0, d1)
  t.strictSame([...p], [0xf1, 0x0d, 0xa9, 0x51, 0xfa])
  const back = Buffer.from(p)
  xorInto(back, d1)
  t.strictSame(back, d0, 'd0 = p ^ d1')
  const odd = Buffer.from([0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]).subarray(1)
  const target = Buffer.from(d0)
  xorInto(target, odd)
  t.strictSame([...target], [0x01 ^ 0xaa, 0x02 ^ 0xbb, 0x03 ^ 0xcc, 0x04 ^ 0xdd, 0x05 ^ 0xee], 'unaligned source')
  t.throws(() => { xorInto(Buffer.alloc(4), Buffer.alloc(3)); }, RangeError)
})

t.test('xorOf: exact bytes for none, one, two and three sources', async (t) => {
  const d0 = Buffer.from([0x01, 0x02, 0x03, 0x04, 0x05])
  const d1 = Buffer.from([0xf0, 0x0f, 0xaa, 0x55, 0xff])
  const d2 = Buffer.from([0x11, 0x22, 0x33, 0x44, 0x55])
  const p = Buffer.alloc(5, 0x77)
  xorOf(p, [])
  t.strictSame([...p], [0, 0, 0, 0, 0], 'no source: zeros')
  xorOf(p, [d1])
  t.strictSame(p, d1, 'one: a copy')
  p.fill(0x77)
  xorOf(p, [d0, d1])
  t.strictSame([...p], [0xf1, 0x0d, 0xa9, 0x51, 0xfa], 'whatever target held is not part of it')
  xorOf(p, [d0, d1, d2])
  t.strictSame([...p], [0xe0, 0x2f, 0x9a, 0x15, 0xaf])
  const short = Buffer.alloc(4)
  xorOf(short, [d0, d1])
  t.strictSame([...short], [0xf1, 0x0d, 0xa9, 0x51], 'over the target\'s length')
  t.throws(() => { xorOf(Buffer.alloc(6), [d0, d1]); }, RangeError)
  t.throws(() => { xorOf(Buffer.alloc(5), [d0, Buffer.alloc(4)]); }, RangeError)
})

t.test('xorInto and xorOf agree with a byte loop at every alignment and ragged length', async (t) => {
  // 64-bit lanes where all views are 8-aligned, 32-bit where 4-aligned, bytes otherwise.
  const backing = Array.from({ length: 3 }, (_, k) => Buffer.from(Array.from({ length: 200 }, (_, i) => (i * (31 + 2 * k) + 7 * k + 1) & 0xff)))
  let checked = 0
  for (const length of [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 100, 131]) {
    for (const shift of [0, 1, 4, 8, 12]) {
      const [a, b, c] = backing.map((buf, k) => buf.subarray(k === 0 ? shift : 8 - (shift % 8) + 8, (k === 0 ? shift : 8 - (shift % 8) + 8) + length))
      const want = Buffer.alloc(length)
      for (let i = 0; i < length; i++) want[i] = a![i]! ^ b![i]! ^ c![i]!
      const target = Buffer.alloc(length + 16).subarray(shift, shift + length)
      xorOf(target, [a!, b!, c!])
      t.strictSame(target, want, `xorOf length ${length} shift ${shift}`)
      const into = Buffer.from(a!)
      xorInto(into, b!, c!)
      t.strictSame(into, want, `xorInto length ${length} shift ${shift}`)
      checked++
    }
  }
  t.equal(checked, 60)
  const big = Buffer.alloc(64 * 1024, 0xa5)
  const ones = Buffer.alloc(64 * 1024, 0xff)
  const out = Buffer.alloc(64 * 1024)
  xorOf(out, [big, ones])
  t.ok(out.every((x) => x === 0x5a), 'a whole 64 KiB unit in 64-bit lanes')
})

t.test('a known 3-member stripe: parity bytes on the parity member, each member rebuilt from the others', async (t) => {
  const unit = 512
  const devs = [0, 1, 2].map(() => new MemoryDevice(2 * unit))
  const raid = new Raid5Device(devs, { unit })
  t.equal(raid.size, 2 * 2 * unit)
  const d0 = Buffer.alloc(unit, 0).map((_, i) => i & 0xff)
  const d1 = Buffer.alloc(unit, 0).map((_, i) => (i * 7 + 3) & 0xff)
  await raid.write(0, Buffer.concat([d0, d1]))
  const onDisk = await Promise.all(devs.map((d) => d.read(0, unit)))
  t.strictSame(onDisk[0], d0, 'D0 on member 0')
  t.strictSame(onDisk[1], d1, 'D1 on member 1')
  t.strictSame([...(onDisk[2] ?? Buffer.alloc(0)).subarray(0, 6)], [0x03, 0x0b, 0x13, 0x1b, 0x1b, 0x23], 'P on member 2: i ^ (7i + 3)')
  for (let lost = 0; lost < 3; lost++) {
    const rebuilt = Buffer.alloc(unit)
    xorInto(rebuilt, ...onDisk.filter((_, i) => i !== lost))
    t.strictSame(rebuilt, onDisk[lost], `member ${lost} = xor of the other two`)
  }
  raid.fail(0)
  t.strictSame(await raid.read(0, unit), d0, 'the volume reconstructs D0 with member 0 gone')
})
