import t from 'tap'
import { rename } from 'node:fs/promises'
import { join } from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { assembleVolume } from '../../../vfs/volume/assemble.ts'
import { createVolume, updateConfig } from '../../../vfs/volume/create-volume.ts'
import { MEMBER_RESERVED, SUPERBLOCK_OFFSETS } from '../../../vfs/volume/member-format.ts'
import type { Disk } from '../../../vfs/volume/member-io.ts'
import { describeTree, testFactory } from './recording-factory.ts'
import { DATA, labelAll, memoryDisks, rng, seededRandom, shuffle } from './assemble-helpers.ts'

t.test('real image files, renamed and given in another order, assemble to the same tree', async (t) => {
  const dir = t.testdir({})
  const names = ['a', 'b', 'c']
  const created: Disk[] = []
  for (const n of names) created.push({ path: n, dev: await ImageFile.create(join(dir, `${n}.img`), 2 * MEMBER_RESERVED) })
  const vol = await createVolume('files', 'raid5', created, { random: seededRandom('files') })
  await labelAll(created)
  for (const d of created) await d.dev.close()
  // The disks move: a is now z, b is x, c is y.
  await rename(join(dir, 'a.img'), join(dir, 'z.img'))
  await rename(join(dir, 'b.img'), join(dir, 'x.img'))
  await rename(join(dir, 'c.img'), join(dir, 'y.img'))
  const reopened: Disk[] = []
  for (const n of ['y', 'z', 'x']) reopened.push({ path: join(dir, `${n}.img`), dev: await ImageFile.open(join(dir, `${n}.img`)) })
  t.teardown(async () => {
    for (const d of reopened) await d.dev.close()
  })
  const got = await assembleVolume(reopened, testFactory())
  t.equal(await describeTree(got.device), 'raid5/65536(a@1048576+1048576, b@1048576+1048576, c@1048576+1048576)')
  t.strictSame(got.config, vol.config)
  const pathOf = new Map(got.disks.map((d) => [d.uuid, d.path]))
  t.strictSame(
    vol.config.members.map((m) => pathOf.get(m.uuid)),
    ['z', 'x', 'y'].map((n) => join(dir, `${n}.img`)),
    'each member uuid maps to the file that holds it now',
  )
  t.strictSame(got.missing, [])
})

t.test('a span keeps its data through reassembly in any order', async (t) => {
  const seed = Number(process.env.TSNFS_VOLUME_SHUFFLE_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (TSNFS_VOLUME_SHUFFLE_SEED to reproduce)`)
  const random = rng(seed)
  const disks = memoryDisks('d', 4)
  await createVolume('spanned', 'span', disks, { random: seededRandom('span') })
  const first = await assembleVolume(disks, testFactory())
  t.equal(first.device.size, 4 * DATA)
  const data = Buffer.alloc(4 * DATA)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff
  await first.device.write(0, data)
  for (let round = 0; round < 10; round++) {
    const again = await assembleVolume(shuffle(disks, random), testFactory())
    t.ok((await again.device.read(0, data.length)).equals(data), `round ${round}: every byte back in place`)
  }
})

t.test('the configuration with the highest sequence number wins', async (t) => {
  const disks = memoryDisks('m', 3)
  const vol = await createVolume('mirrored', 'mirror', disks, { random: seededRandom('hi') })
  await labelAll(disks)
  // m2 is away while the volume is renamed: it keeps seq 1, and is still listed as ok.
  const result = await updateConfig({ config: vol.config, disks: vol.disks.slice(0, 2) }, (c) => ({ ...c, name: 'renamed' }))
  t.strictSame(result.written.toSorted(), ['m0', 'm1'])
  for (const order of [[2, 1, 0], [0, 2, 1], [1, 0, 2]]) {
    const got = await assembleVolume(order.map((i) => disks[i]!), testFactory())
    t.equal(got.config.name, 'renamed')
    t.equal(got.config.seq, 2)
    t.equal(await describeTree(got.device), `mirror(m0@1048576+${DATA}, m1@1048576+${DATA}, m2@1048576+${DATA})`)
  }
})

t.test('a torn newest superblock copy: the other copy serves, and the disk is reported', async (t) => {
  const disks = memoryDisks('t', 2)
  const vol = await createVolume('torn', 'mirror', disks, { random: seededRandom('torn') })
  await updateConfig(vol, (c) => ({ ...c, name: 'torn2' }))
  await disks[0]!.dev.write(SUPERBLOCK_OFFSETS[1]! + 200, Buffer.from('torn bytes'))
  const got = await assembleVolume(disks, testFactory())
  t.equal(got.config.seq, 2)
  t.equal(got.config.name, 'torn2')
  t.match(got.repairs, [{ path: 't0', problems: [/^copy 1: VOLUME_NO_SUPERBLOCK: checksum/] }])
  t.equal(got.repairs.length, 1)
})

t.test('a stale member is refused; without it the volume starts degraded', async (t) => {
  const disks = memoryDisks('s', 3)
  const vol = await createVolume('stale', 'mirror', disks, { random: seededRandom('stale') })
  await labelAll(disks)
  const failed = vol.config.members[2]!.uuid
  await updateConfig(vol, (c) => ({ ...c, members: c.members.map((m) => (m.uuid === failed ? { ...m, state: 'failed', reason: 'EIO: read at 4096' } : m)) }))
  await t.rejects(assembleVolume(disks, testFactory()), {
    code: 'VOLUME_STALE',
    message: 'VOLUME_STALE: s2: stale member: configuration seq 1, volume is at 2; the volume marks it failed (EIO: read at 4096)',
  })
  const got = await assembleVolume(disks.slice(0, 2), testFactory())
  t.equal(await describeTree(got.device), `mirror(s0@1048576+${DATA}, s1@1048576+${DATA}, missing(${DATA}))`)
  t.strictSame(got.missing, [{ uuid: failed, index: 2, reason: `member 2 (${failed}) marked failed: EIO: read at 4096` }])

  // Dropped from the configuration altogether: refused as no longer listed.
  const kept = vol.config.members.slice(0, 2)
  await updateConfig(vol, (c) => ({ ...c, root: { kind: 'mirror', children: kept.map((m) => ({ kind: 'disk', member: m.uuid })) }, members: kept }))
  await t.rejects(assembleVolume([disks[2]!, disks[0]!], testFactory()), { code: 'VOLUME_STALE', message: /^VOLUME_STALE: s2: stale member: configuration seq 1, volume is at 3; the volume no longer lists it$/ })
})

t.test('disks of another volume are refused, naming both volumes', async (t) => {
  const alpha = memoryDisks('alpha', 2)
  const beta = memoryDisks('beta', 2)
  const a = await createVolume('alpha', 'mirror', alpha, { random: seededRandom('alpha') })
  const b = await createVolume('beta', 'mirror', beta, { random: seededRandom('beta') })
  await t.rejects(assembleVolume([alpha[0]!, beta[0]!, alpha[1]!, beta[1]!], testFactory()), {
    code: 'VOLUME_FOREIGN',
    message: `VOLUME_FOREIGN: disks of 2 volumes given together (volume alpha (id ${a.config.id}): alpha0, alpha1; volume beta (id ${b.config.id}): beta0, beta1)`,
  })
  await t.rejects(assembleVolume([alpha[0]!, alpha[1]!, beta[1]!], testFactory(), { volume: 'alpha' }), {
    code: 'VOLUME_FOREIGN',
    message: `VOLUME_FOREIGN: beta1: disk of volume beta (id ${b.config.id}), not of volume alpha`,
  })
  t.equal((await assembleVolume(alpha, testFactory(), { volume: a.config.id })).config.name, 'alpha')
})

t.test('a disk without superblock, one disk given twice, and no disks are refused', async (t) => {
  const disks = memoryDisks('n', 2)
  await createVolume('nosb', 'mirror', disks, { random: seededRandom('nosb') })
  const blank = { path: '/dev/blank', dev: new MemoryDevice(2 * MEMBER_RESERVED) }
  await t.rejects(assembleVolume([disks[0]!, blank], testFactory()), { code: 'VOLUME_NO_SUPERBLOCK', message: /^VOLUME_NO_SUPERBLOCK: \/dev\/blank: no valid member superblock \(copy 0: .*no TSNFSVOL magic/ })
  const copy = { path: 'n0-copy', dev: disks[0]!.dev.clone() }
  await t.rejects(assembleVolume([disks[0]!, disks[1]!, copy], testFactory()), { code: 'VOLUME_MEMBER', message: /^VOLUME_MEMBER: n0 and n0-copy both carry member [0-9a-f]{32} of volume nosb/ })
  await t.rejects(assembleVolume([], testFactory()), { code: 'VOLUME_INCOMPLETE', message: 'VOLUME_INCOMPLETE: no disks given' })
})

t.test('which missing members each level survives', async (t) => {
  const stripe = memoryDisks('st', 3)
  const sv = await createVolume('st', 'stripe', stripe, { random: seededRandom('st'), unit: 4096 })
  const lost = sv.config.members[1]!.uuid
  await t.rejects(assembleVolume([stripe[0]!, stripe[2]!], testFactory()), {
    code: 'VOLUME_INCOMPLETE',
    message: `VOLUME_INCOMPLETE: volume st cannot start: stripe of 3 lost 1 (member 1 (${lost}) not among the disks given)`,
  })

  const r5 = memoryDisks('r', 4)
  await createVolume('r5', 'raid5', r5, { random: seededRandom('r5') })
  await labelAll(r5)
  const degraded = await assembleVolume([r5[3]!, r5[0]!, r5[2]!], testFactory())
  t.equal(await describeTree(degraded.device), `raid5/65536(r0@1048576+${DATA}, missing(${DATA}), r2@1048576+${DATA}, r3@1048576+${DATA})`)
  t.equal(degraded.missing.length, 1)
  await t.rejects(assembleVolume([r5[3]!, r5[0]!], testFactory()), { code: 'VOLUME_INCOMPLETE', message: /raid5 of 4 lost 2 \(member 1 .*; member 2 .*\)/ })

  const m = memoryDisks('mm', 3)
  await createVolume('m3', 'mirror', m, { random: seededRandom('m3') })
  await labelAll(m)
  t.equal(await describeTree((await assembleVolume([m[1]!], testFactory())).device), `mirror(missing(${DATA}), mm1@1048576+${DATA}, missing(${DATA}))`)
})

t.test('nested layouts: a lost subtree under a mirror stands in whole, sized by the layers', async (t) => {
  const d = memoryDisks('n', 4)
  const vol = await createVolume('nested', 'span', d, { random: seededRandom('nested') })
  await labelAll(d)
  const u = vol.config.members.map((m) => m.uuid)
  await updateConfig(vol, (c) => ({
    ...c,
    root: {
      kind: 'mirror',
      children: [
        { kind: 'stripe', unit: 4096, children: [{ kind: 'disk', member: u[0]! }, { kind: 'disk', member: u[1]! }] },
        { kind: 'span', children: [{ kind: 'partition', offset: 0, size: DATA, child: { kind: 'disk', member: u[2]! } }, { kind: 'disk', member: u[3]! }] },
      ],
    },
  }))
  const all = await assembleVolume(shuffle(d, rng(7)), testFactory())
  t.equal(await describeTree(all.device), `mirror(stripe/4096(n0@1048576+${DATA}, n1@1048576+${DATA}), span(partition(n2@1048576+${DATA}), n3@1048576+${DATA}))`)
  t.equal(all.device.size, 2 * DATA)
  // n1 lost: its stripe cannot serve, so none of it is read (n0's half would be stale after writes).
  const without = await assembleVolume([d[0]!, d[2]!, d[3]!], testFactory())
  t.equal(await describeTree(without.device), `mirror(missing(${2 * DATA}), span(partition(n2@1048576+${DATA}), n3@1048576+${DATA}))`)
  t.match(without.missing, [{ index: 1, reason: /not among the disks given/ }])
  await t.rejects(assembleVolume([d[0]!, d[3]!], testFactory()), { code: 'VOLUME_INCOMPLETE', message: /mirror of 2 lost 2 \(stripe of 2 lost 1 .*; span of 2 lost 1 \(partition: member 2/ })
})
