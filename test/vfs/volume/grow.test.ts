/*
 * growVolume (vfs/volume/grow.ts): a span takes new disks after its last member; a mirror, stripe
 * or RAID-5 whose disks became larger grows each member to the smallest capacity, its new region
 * zeroed on every leg / member so legs and parity agree (scrub finds nothing); the data already
 * there stays where it was, byte for byte; the intent bitmap is formatted for the new size, and
 * its region size doubles when the regions would no longer fit a member's area; a member added to
 * a stripe or RAID-5 reshapes it, one added to a mirror is refused with the reason. Every crash state of a grow assembles
 * as the old volume or the new one.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { assembleVolume } from '../../../vfs/volume/assemble.ts'
import { MAX_INTENT_REGIONS, validateConfig } from '../../../vfs/volume/config.ts'
import { createVolume } from '../../../vfs/volume/create-volume.ts'
import { LAYERS, openIntentBitmap, redundantLayers } from '../../../vfs/volume/factory.ts'
import { growVolume } from '../../../vfs/volume/grow.ts'
import { INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import type { Disk } from '../../../vfs/volume/member-io.ts'
import { readMember } from '../../../vfs/volume/member-io.ts'
import { JointRecorder } from './joint-recorder.ts'
import { memoryDisks, seededRandom } from './assemble-helpers.ts'
import { pattern } from './volume-helpers.ts'

const KiB = 1024
const SMALL = MEMBER_RESERVED + 64 * KiB
const LARGE = MEMBER_RESERVED + 192 * KiB

/** The same disk, made larger (an image file after truncate, or a copy onto a bigger disk). */
function enlarge(disk: Disk & { dev: MemoryDevice }, size: number): Disk & { dev: MemoryDevice } {
  const dev = new MemoryDevice(size)
  dev.writeSync(0, disk.dev.toBuffer())
  return { path: disk.path, dev }
}

async function open(disks: readonly Disk[], intent = true): Promise<Awaited<ReturnType<typeof assembleVolume>>> {
  return assembleVolume(disks, LAYERS, intent ? { openIntent: openIntentBitmap } : {})
}

async function seqs(disks: readonly Disk[]): Promise<number[]> {
  return Promise.all(disks.map(async (d) => (await readMember(d.dev)).superblock.seq))
}

t.test('span: new disks join after the last member; the data stays; seq 2 on every member', async (t) => {
  const disks = memoryDisks('s', 2, SMALL)
  const made = await createVolume('sp', 'span', disks, { random: seededRandom('span') })
  const v1 = await open(disks)
  const data = pattern(v1.device.size, 1)
  await v1.device.write(0, data)
  t.equal(v1.device.size, 128 * KiB)
  const [extra] = memoryDisks('x', 1, LARGE)
  if (extra === undefined) throw new Error('no disk')
  const r = await growVolume(made, { add: [extra], random: seededRandom('grow') })
  t.ok(r.grown)
  t.equal(r.zeroed, 0, 'a span zeroes nothing')
  t.equal(r.config.seq, 2)
  t.strictSame(await seqs([...disks, extra]), [2, 2, 2], 'every member, the new one too, holds seq 2')
  const v2 = await open([extra, ...disks])
  t.equal(v2.device.size, 128 * KiB + 192 * KiB, 'the volume grew by the new disk')
  t.same(await v2.device.read(0, data.length), data, 'the old bytes are where they were')
  t.equal(v2.config.members[2]?.uuid, made.disks[2]?.uuid, 'the new member is index 2')
  await v2.device.write(v2.device.size - 4096, pattern(4096, 9))
  t.same(await extra.dev.read(MEMBER_RESERVED + 192 * KiB - 4096, 4096), pattern(4096, 9), 'the volume\'s last block is the new disk\'s')
})

t.test('span --size max grows its last member only (an earlier one would move what follows it)', async (t) => {
  const small = memoryDisks('l', 2, SMALL)
  await createVolume('last', 'span', small, { random: seededRandom('last') })
  const v1 = await open(small)
  const data = pattern(v1.device.size, 7)
  await v1.device.write(0, data)
  const disks = small.map((d) => enlarge(d, LARGE))
  const r = await growVolume(await open(disks), { size: 'max' })
  t.strictSame(r.config.members.map((m) => m.size), [64 * KiB, 192 * KiB], 'member 0 keeps its size though its disk grew')
  t.equal(r.zeroed, 0)
  const v2 = await open(disks)
  t.equal(v2.device.size, 256 * KiB)
  t.same(await v2.device.read(0, data.length), data, 'the old bytes are where they were')
})

t.test('a member added to a stripe or RAID-5 reshapes it (reshape.test.ts has the details); to a mirror is refused, naming why', async (t) => {
  for (const kind of ['stripe', 'raid5'] as const) {
    const disks = memoryDisks(kind, 3, SMALL)
    const made = await createVolume(kind, kind, disks, { unit: 4096, random: seededRandom(kind) })
    const v1 = await open(disks)
    const data = pattern(v1.device.size, 3)
    await v1.device.write(0, data)
    await v1.device.flush()
    const [extra] = memoryDisks('x', 1, SMALL)
    if (extra === undefined) throw new Error('no disk')
    const r = await growVolume(made, { add: [extra], random: seededRandom(`${kind}-new`) })
    t.ok(r.grown, `${kind}: grown`)
    const v2 = await open([...disks, extra])
    t.equal(v2.device.size, (kind === 'raid5' ? 3 : 4) * 64 * KiB, `${kind}: the size over four members`)
    t.same(await v2.device.read(0, data.length), data, `${kind}: the old bytes at the same offsets`)
  }
  for (const [kind, message] of [
    ['mirror', 'VOLUME_LAYOUT: adding a disk to a mirror adds a leg, not space; a mirror grows with --size max once every leg is larger'],
  ] as const) {
    const disks = memoryDisks(kind, 3, SMALL)
    const made = await createVolume(kind, kind, disks, { random: seededRandom(kind) })
    const [extra] = memoryDisks('x', 1, SMALL)
    await t.rejects(growVolume(made, { add: extra === undefined ? [] : [extra] }), { code: 'VOLUME_LAYOUT', message }, kind)
    t.strictSame(await seqs(disks), [1, 1, 1], `${kind}: nothing written`)
  }
  const disks = memoryDisks('n', 2, SMALL)
  const made = await createVolume('n', 'span', disks)
  await t.rejects(growVolume(made, {}), { code: 'VOLUME_LAYOUT', message: 'VOLUME_LAYOUT: nothing to grow: give new disks (span) or a size (max or bytes per member)' })
  await t.rejects(growVolume(made, { add: [disks[0] as Disk] }), { code: 'VOLUME_LAYOUT', message: 'VOLUME_LAYOUT: n0 is already a member of volume n' })
})

for (const [kind, count, unit] of [['mirror', 2, undefined], ['raid5', 3, 4096], ['stripe', 2, 4096]] as const) {
  t.test(`${kind}: --size max over larger disks; old data stays, the new region agrees`, async (t) => {
    const small = memoryDisks(kind, count, SMALL)
    await createVolume(kind, kind, small, { random: seededRandom(kind), ...(unit === undefined ? {} : { unit }) })
    const v1 = await open(small)
    const oldSize = v1.device.size
    const data = pattern(oldSize, 3)
    await v1.device.write(0, data)
    await v1.device.flush()
    for (const i of v1.intents) await i.close()
    // Larger disks, one larger than the rest: the smallest capacity wins. Different junk on each where the new region will be.
    const disks = small.map((d, i) => enlarge(d, LARGE + (i === 0 ? 64 * KiB : 0)))
    disks.forEach((d, i) => {
      d.dev.writeSync(SMALL, Buffer.alloc(LARGE - SMALL, 0xa5 + i))
    })
    const grown = await open(disks)
    t.equal(grown.device.size, oldSize, 'before the grow the configuration still says the old size')
    for (const i of grown.intents) await i.close()
    const r = await growVolume(grown, { size: 'max' })
    t.ok(r.grown)
    t.strictSame(r.config.members.map((m) => m.size), disks.map((_, i) => 192 * KiB + (i === 0 ? 64 * KiB : 0)).map((s) => Math.min(s, 192 * KiB)), 'each member to the smallest capacity')
    t.equal(r.zeroed, kind === 'stripe' ? 0 : count * 128 * KiB, 'mirror and RAID-5: the new region zeroed on every member')
    const v2 = await open(disks)
    const members = kind === 'raid5' ? count - 1 : kind === 'stripe' ? count : 1
    t.equal(v2.device.size, members * 192 * KiB, `the ${kind} grew`)
    t.same(await v2.device.read(0, oldSize), data, 'the old bytes are where they were')
    if (kind !== 'stripe') {
      t.same(await v2.device.read(oldSize, v2.device.size - oldSize), Buffer.alloc(v2.device.size - oldSize), 'the new region reads zeros')
      const layer = redundantLayers(v2.device)[0]
      const scrub = await layer?.scrub()
      t.match(scrub, kind === 'mirror' ? { mismatchRanges: 0, mismatchBytes: 0 } : { mismatches: 0 }, 'scrub: legs and parity agree everywhere')
      // The intent bitmap was reformatted for the new size: a write at the very end marks and settles.
      await v2.device.write(v2.device.size - 4096, pattern(4096, 4))
      await v2.device.flush()
      t.same(await v2.device.read(v2.device.size - 4096, 4096), pattern(4096, 4))
    }
    for (const i of v2.intents) await i.close()
    const again = await growVolume(v2, { size: 'max' })
    t.notOk(again.grown, 'a second --size max changes nothing')
  })
}

t.test('a size that does not fit, or shrinks, is refused', async (t) => {
  const disks = memoryDisks('m', 2, SMALL).map((d) => enlarge(d, LARGE))
  const made = await createVolume('m', 'mirror', disks, { random: seededRandom('m') })
  await t.rejects(growVolume(made, { size: 256 * KiB }), { code: 'VOLUME_LAYOUT', message: `VOLUME_LAYOUT: m0: 262144 bytes per member do not fit its 196608-byte data area (a ${LARGE}-byte disk)` })
  await t.rejects(growVolume(made, { size: 64 * KiB }), { code: 'VOLUME_LAYOUT', message: 'VOLUME_LAYOUT: m0: member size 196608 cannot shrink to 65536; grow only grows' })
})

t.test('the intent region size doubles when the grown volume has too many regions for the area', async (t) => {
  // 4 KiB regions: two 1 GiB members make exactly MAX_INTENT_REGIONS; a third GiB would not fit.
  const GiB = 1024 * 1024 * 1024
  const disks = memoryDisks('b', 2, MEMBER_RESERVED + GiB)
  const made = await createVolume('big', 'span', disks, { intentBitmap: true, regionSize: 4096, random: seededRandom('big') })
  t.equal(Math.ceil((2 * GiB) / 4096), MAX_INTENT_REGIONS)
  const [extra] = memoryDisks('c', 1, MEMBER_RESERVED + GiB)
  const r = await growVolume(made, { add: extra === undefined ? [] : [extra] })
  t.equal(r.config.flags.regionSize, 8192, 'regions of 8 KiB: 393216 of them')
  t.equal((await readMember(disks[0]?.dev ?? new MemoryDevice(512))).superblock.config.flags.regionSize, 8192, 'on disk')
  // The bitmap of the grown size, in those regions, fits a member's area and opens there.
  const copies = [...disks, ...(extra === undefined ? [] : [extra])].map((d) => ({ dev: d.dev, offset: INTENT_OFFSET, length: INTENT_LENGTH }))
  const log = await openIntentBitmap(copies, 3 * GiB, r.config.flags.regionSize)
  await log.mark(3 * GiB - 4096, 4096, 1)
  t.strictSame(log.dirtyAtOpen(), [], 'formatted clean (the area was zeroed by the grow)')
  await log.close()
  t.throws(() => validateConfig({ ...r.config, flags: { intentBitmap: true, regionSize: 4096 } }), { code: 'VOLUME_LAYOUT' }, '4 KiB regions would be too many')
})

t.test('every crash state of a mirror grow assembles as the old volume or the new one', async (t) => {
  const small = memoryDisks('c', 2, SMALL)
  await createVolume('crash', 'mirror', small, { random: seededRandom('crash') })
  const v1 = await open(small)
  const data = pattern(v1.device.size, 5)
  await v1.device.write(0, data)
  await v1.device.flush()
  for (const i of v1.intents) await i.close()
  const bases = small.map((d) => enlarge(d, LARGE).dev)
  const rec = new JointRecorder()
  const disks = bases.map((b, i) => ({ path: `c${i}`, dev: rec.wrap(i, b.clone()) }))
  const v = await open(disks, false)
  await growVolume(v, { size: 'max' })
  const sizes = new Set<number>()
  let states = 0
  for (let at = 0; at <= rec.now; at++) {
    const { durable, pending } = rec.split(at)
    for (const writes of [durable, [...durable, ...pending]]) {
      const devs = rec.build(bases, writes)
      const got = await open(devs.map((dev, i) => ({ path: `c${i}`, dev })))
      states++
      sizes.add(got.device.size)
      const ok = (await got.device.read(0, data.length)).equals(data)
      if (!ok) t.fail(`crash at tick ${at}: the old data changed`)
      for (const i of got.intents) await i.close()
    }
  }
  t.comment(`${states} crash states`)
  t.strictSame([...sizes].sort((a, b) => a - b), [64 * KiB, 192 * KiB], 'each state opens (read-write, bitmap and all) as the old size or the new')
})

t.test('every crash state of a span taking a disk: the new volume, or the old one from its old disks', async (t) => {
  const small = memoryDisks('s', 2, SMALL)
  await createVolume('spancrash', 'span', small, { random: seededRandom('spancrash') })
  const v1 = await open(small)
  const data = pattern(v1.device.size, 6)
  await v1.device.write(0, data)
  const bases = [...small.map((d) => d.dev.clone()), new MemoryDevice(LARGE)]
  const rec = new JointRecorder()
  const disks = bases.map((b, i) => ({ path: `d${i}`, dev: rec.wrap(i, b.clone()) }))
  const v = await open(disks.slice(0, 2))
  await growVolume(v, { add: disks.slice(2), random: seededRandom('spancrash-grow') })
  const seen = new Set<string>()
  for (let at = 0; at <= rec.now; at++) {
    const { durable, pending } = rec.split(at)
    for (const writes of [durable, [...durable, ...pending]]) {
      const devs = rec.build(bases, writes).map((dev, i) => ({ path: `d${i}`, dev }))
      let got: Awaited<ReturnType<typeof open>>
      try {
        got = await open(devs)
        seen.add(`all three: ${got.device.size}`)
      } catch (err) {
        // Until the new disk holds its superblock it is no member, and the old disks alone are the old volume.
        t.match(err, { code: 'VOLUME_NO_SUPERBLOCK' }, `tick ${at}: only the new disk is not yet a member`)
        got = await open(devs.slice(0, 2))
        seen.add(`old two: ${got.device.size}`)
      }
      if (!(await got.device.read(0, data.length)).equals(data)) t.fail(`crash at tick ${at}: the old data changed`)
    }
  }
  t.strictSame([...seen].sort(), [`all three: ${320 * KiB}`, `old two: ${128 * KiB}`], 'the old volume or the new one, never a half of it')
})
