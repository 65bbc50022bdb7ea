/*
 * A member added to a stripe or RAID-5 (growVolume → reshape.ts, md's --grow --raid-devices=N+1):
 * the volume restripes over n + 1 members, the same unit, RAID-5 left-symmetric over n + 1, and
 * holds every old byte at the same volume offset, zeros after; RAID-5's parity is consistent
 * (scrub finds nothing, and a member lost afterwards reads the same); the configuration records no
 * reshape any more. A reshape stopped by an I/O error resumes at the next assembly. Refusals with
 * exact messages, nothing written. TSNFS_SEED repeats a run.
 */
import t from 'tap'
import { randomInt } from 'node:crypto'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { assembleVolume } from '../../../vfs/volume/assemble.ts'
import type { ParentKind } from '../../../vfs/volume/config.ts'
import { createVolume, updateConfig } from '../../../vfs/volume/create-volume.ts'
import { LAYERS } from '../../../vfs/volume/factory.ts'
import { growVolume } from '../../../vfs/volume/grow.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import type { Disk } from '../../../vfs/volume/member-io.ts'
import { readMember } from '../../../vfs/volume/member-io.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { StripeDevice } from '../../../vfs/volume/stripe.ts'
import { memoryDisks, seededRandom, shuffle } from './assemble-helpers.ts'
import { randomBytes, rng, WriteBudgetDevice } from './volume-helpers.ts'

const KiB = 1024
const UNIT = 4 * KiB
const ROWS = 16
const SIZE = MEMBER_RESERVED + ROWS * UNIT
const seed = Number(process.env.TSNFS_SEED ?? randomInt(1, 0x7fff_ffff))
t.comment(`seed ${seed} (TSNFS_SEED=${seed} repeats it)`)
const r = rng(seed)

interface Made {
  disks: (Disk & { dev: MemoryDevice })[]
  model: Buffer
}

async function made(level: ParentKind, n: number, tag: string): Promise<Made> {
  const disks = memoryDisks(tag, n, SIZE)
  await createVolume(tag, level, disks, { unit: UNIT, random: seededRandom(tag) })
  const v = await assembleVolume(disks, LAYERS)
  const model = randomBytes(r, v.device.size)
  await v.device.write(0, model)
  await v.device.flush()
  return { disks, model }
}

async function seqs(disks: readonly Disk[]): Promise<number[]> {
  return Promise.all(disks.map(async (d) => (await readMember(d.dev)).superblock.seq))
}

for (const [level, n] of [['stripe', 2], ['stripe', 3], ['raid5', 3], ['raid5', 4]] as const) {
  t.test(`${level} of ${n} takes member ${n + 1}: every byte where it was, zeros after`, async (t) => {
    const { disks, model } = await made(level, n, `${level}${n}`)
    const [extra] = memoryDisks('x', 1, SIZE + 8 * UNIT)
    if (extra === undefined) throw new Error('no disk')
    const v = await assembleVolume(disks, LAYERS)
    let checkpoints = 0
    const g = await growVolume(v, { add: [extra], random: seededRandom('new'), reshape: { windowBytes: 3 * (n + 1) * UNIT, onProgress: () => checkpoints++ } })
    t.ok(g.grown)
    t.equal(g.config.reshape, undefined, 'the configuration records no reshape any more')
    t.equal(g.config.root.kind === 'disk' || g.config.root.kind === 'partition' ? 0 : g.config.root.children.length, n + 1)
    t.ok(checkpoints >= ROWS / 3, `${checkpoints} checkpoints`)
    const all = [...disks, extra]
    const seq = g.config.seq
    t.strictSame(await seqs(all), all.map(() => seq), 'every member holds the last configuration')
    const w = await assembleVolume(shuffle(all, r), LAYERS)
    const data = level === 'raid5' ? n : n + 1
    t.equal(w.device.size, ROWS * data * UNIT, 'the new layout\'s size')
    const now = await w.device.read(0, w.device.size)
    t.ok(now.subarray(0, model.length).equals(model), 'the old bytes at the same offsets')
    t.ok(now.subarray(model.length).every((b) => b === 0), 'zeros after them')
    if (level === 'raid5') {
      const raid = w.device
      if (!(raid instanceof Raid5Device)) throw new Error('a RAID-5 on top')
      t.equal((await raid.scrub()).mismatches, 0, 'scrub finds no parity mismatch')
      // Any member lost: the volume reads the same (parity left-symmetric over n + 1).
      for (let lost = 0; lost <= n; lost++) {
        const again = await assembleVolume(all.filter((_, i) => i !== lost), LAYERS)
        t.ok((await again.device.read(0, again.device.size)).equals(now), `member ${lost} lost: the same bytes`)
      }
    } else {
      t.ok(w.device instanceof StripeDevice)
    }
  })
}

t.test('a reshape stopped by an error resumes at the next assembly, from its checkpoint', async (t) => {
  const { disks, model } = await made('raid5', 3, 'stop')
  const [extra] = memoryDisks('x', 1, SIZE)
  if (extra === undefined) throw new Error('no disk')
  const counter = { left: 90 }
  const wrapped = [...disks, extra].map((d) => ({ path: d.path, dev: new WriteBudgetDevice(d.dev, counter) }))
  const v = await assembleVolume(wrapped.slice(0, 3), LAYERS)
  await t.rejects(growVolume(v, { add: [wrapped[3] as Disk], random: seededRandom('stop-new'), reshape: { windowBytes: 4 * UNIT } }), { message: 'EIO (the test)' })
  const mid = (await readMember(extra.dev)).superblock.config.reshape
  t.ok(mid !== undefined && mid.position > 0 && mid.position < ROWS * 3 * UNIT, `stopped at ${mid?.position} of ${ROWS * 3 * UNIT}`)
  const newUuid = (await readMember(extra.dev)).superblock.memberUuid
  await t.rejects(
    assembleVolume(disks, LAYERS),
    { code: 'VOLUME_INCOMPLETE', message: `VOLUME_INCOMPLETE: volume stop is being reshaped, which needs every member to finish: member 3 (${newUuid}) is not among the disks given (the new disk too)` },
    'the old disks alone are refused',
  )
  const readOnly = [...disks, extra].map((d) => ({ path: d.path, dev: d.dev.clone({ readOnly: true }) }))
  await t.rejects(assembleVolume(readOnly, LAYERS), {
    code: 'VOLUME_LAYOUT',
    message: `VOLUME_LAYOUT: volume stop is being reshaped (${mid?.position} bytes in the new layout); stop0 is read-only: a read-write open of every disk finishes it (tsnfs resize --volume DISK..., or the server at start)`,
  })
  const w = await assembleVolume([extra, ...disks], LAYERS)
  t.equal(w.config.reshape, undefined, 'finished')
  t.equal(w.device.size, ROWS * 3 * UNIT)
  const now = await w.device.read(0, w.device.size)
  t.ok(now.subarray(0, model.length).equals(model), 'the old bytes')
  t.ok(now.subarray(model.length).every((b) => b === 0), 'zeros after')
  if (!(w.device instanceof Raid5Device)) throw new Error('a RAID-5 on top')
  t.equal((await w.device.scrub()).mismatches, 0, 'parity consistent')
})

t.test('refusals: exact messages, nothing written', async (t) => {
  const { disks } = await made('raid5', 3, 'ref')
  const before = disks.map((d) => Buffer.from(d.dev.toBuffer()))
  const v = await assembleVolume(disks, LAYERS)
  const path = (name: string, size: number): Disk & { dev: MemoryDevice } => ({ path: name, dev: new MemoryDevice(size) })
  await t.rejects(growVolume(v, { add: [path('small', SIZE - UNIT)] }), {
    code: 'VOLUME_LAYOUT',
    message: `VOLUME_LAYOUT: small: its ${(ROWS - 1) * UNIT}-byte data area is smaller than the ${ROWS * UNIT} bytes each member of volume ref uses`,
  })
  await t.rejects(growVolume(v, { add: [path('a', SIZE), path('b', SIZE)] }), { code: 'VOLUME_LAYOUT', message: 'VOLUME_LAYOUT: a reshape adds one member at a time; 2 disks were given' })
  await t.rejects(growVolume(v, { add: [path('a', SIZE)], size: 'max' }), {
    code: 'VOLUME_LAYOUT',
    message: 'VOLUME_LAYOUT: a reshape (a member added to a stripe or raid5) and --size are separate grows: run them one after the other',
  })
  const other = memoryDisks('o', 3, SIZE)
  await createVolume('other', 'raid5', other, { unit: UNIT, random: seededRandom('other') })
  const foreign = other[0] as Disk
  const uuid = (await readMember(foreign.dev)).superblock.config.id
  await t.rejects(growVolume(v, { add: [foreign] }), { code: 'VOLUME_FOREIGN', message: `VOLUME_FOREIGN: o0 is member 0 of volume other (id ${uuid}); give force to take it` })
  t.ok(disks.every((d, i) => d.dev.toBuffer().equals(before[i] ?? Buffer.alloc(0))), 'not a byte written')

  // A member failed in the configuration, or not given: the reshape needs them all.
  const lost = v.config.members[1]?.uuid ?? ''
  const two = await assembleVolume(disks.filter((_, i) => i !== 1), LAYERS)
  await t.rejects(growVolume(two, { add: [path('n', SIZE)] }), { code: 'VOLUME_INCOMPLETE', message: `VOLUME_INCOMPLETE: grow needs every member present: member 1 (${lost}) is not among the disks given` })
  await updateConfig(v, (c) => ({ ...c, members: c.members.map((m) => (m.uuid === lost ? { ...m, state: 'failed' as const, reason: 'failed by the test' } : m)) }))
  const failedBefore = disks.map((d) => Buffer.from(d.dev.toBuffer()))
  await t.rejects(growVolume(v, { add: [path('n', SIZE)] }), { code: 'VOLUME_LAYOUT', message: `VOLUME_LAYOUT: grow needs every member in sync: member 1 (${lost}) is failed` })
  t.ok(disks.every((d, i) => d.dev.toBuffer().equals(failedBefore[i] ?? Buffer.alloc(0))), 'degraded: not a byte written')

  // Nested layers: a stripe of mirrors.
  const nest = memoryDisks('m', 4, SIZE)
  const nested = await createVolume('nest', 'span', nest, { random: seededRandom('nest') })
  await updateConfig(nested, (c) => {
    const u = c.members.map((m) => ({ kind: 'disk' as const, member: m.uuid }))
    return { ...c, root: { kind: 'stripe', unit: UNIT, children: [{ kind: 'mirror', children: u.slice(0, 2) }, { kind: 'mirror', children: u.slice(2) }] } }
  })
  await t.rejects(growVolume(nested, { add: [path('n', SIZE)] }), {
    code: 'VOLUME_LAYOUT',
    message: 'VOLUME_LAYOUT: grow handles a volume of one level over its disks (span, stripe, mirror or raid5); volume nest is a stripe with nested layers',
  })
  t.strictSame(await seqs(nest), [2, 2, 2, 2], 'nested: nothing written')

  // Too few units per member for the copy's backup area (a 3-member RAID-5 needs 6).
  const tiny = memoryDisks('t', 3, MEMBER_RESERVED + 5 * UNIT)
  const small = await createVolume('tiny', 'raid5', tiny, { unit: UNIT, random: seededRandom('tiny') })
  await t.rejects(growVolume(small, { add: [path('n', MEMBER_RESERVED + 5 * UNIT)] }), {
    code: 'VOLUME_LAYOUT',
    message: 'VOLUME_LAYOUT: a reshape to 4 members needs at least 6 units of 4096 bytes per member (for its backup area), the volume uses 5',
  })
  t.strictSame(await seqs(tiny), [1, 1, 1], 'nothing written')
})
