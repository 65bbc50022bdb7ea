import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { dataIndexOn, dataMember, locate, parityMember, xorInto } from '../../../vfs/volume/parity.ts'
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
