/*
 * Members inside nested layers, in memory: layout addresses, the nearest redundant layer,
 * failing a stripe leg's disk (the whole leg goes) and replacing it (the whole leg is rebuilt
 * onto a stripe with the new disk, the other disk kept open), refusals; and a RAID-5 of
 * partitions whose replace is cut short resumes from its checkpoint at the next open.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import type { LayoutNode } from '../../../vfs/volume/config.ts'
import { createVolume, updateConfig } from '../../../vfs/volume/create-volume.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import { memberAtAddress, placeOf } from '../../../vfs/volume/member-place.ts'
import { failVolumeMember, replaceVolumeMember } from '../../../vfs/volume/member-repair.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { openVolumeOn } from '../../../vfs/volume/open-volume.ts'
import type { OpenVolume } from '../../../vfs/volume/open-volume.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { contents, randomBytes, rng, seedOf } from './volume-helpers.ts'

const KiB = 1024
const DATA = 512 * KiB
const disk = (member: string): LayoutNode => ({ kind: 'disk', member })

/** A disk that outlives the volumes opened on it (a volume closes its disks). */
class KeepOpen extends PassThroughDevice {
  override close(): Promise<void> {
    return Promise.resolve()
  }
}

async function nested(count: number, root: (u: readonly string[]) => LayoutNode, r: () => number): Promise<MemoryDevice[]> {
  const disks = Array.from({ length: count }, () => new MemoryDevice(MEMBER_RESERVED + DATA))
  const vol = await createVolume('nest', 'span', disks.map((d, i) => ({ path: `disk${i}`, dev: new KeepOpen(d) })), { random: (k) => randomBytes(r, k) })
  await updateConfig(vol, (c) => ({ ...c, root: root(c.members.map((m) => m.uuid)), flags: { intentBitmap: true, regionSize: 64 * KiB } }))
  return disks
}

function open(disks: readonly MemoryDevice[], extra: Parameters<typeof openVolumeOn>[1] = {}): Promise<OpenVolume> {
  return openVolumeOn(disks.map((d, i) => ({ path: `disk${i}`, dev: new KeepOpen(d) })), extra)
}

t.test('a mirror of stripes: addresses, fail takes the leg, replace rebuilds the leg', async (t) => {
  const seed = seedOf()
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const disks = await nested(4, (u) => ({
    kind: 'mirror',
    children: [
      { kind: 'stripe', unit: 16 * KiB, children: [disk(u[0] ?? ''), disk(u[1] ?? '')] },
      { kind: 'stripe', unit: 16 * KiB, children: [disk(u[2] ?? ''), disk(u[3] ?? '')] },
    ],
  }), r)
  const v = await open(disks)
  t.teardown(() => v.close())
  const model = randomBytes(r, v.device.size)
  await v.device.write(0, model)
  t.equal(memberAtAddress(v, '0.1'), 1)
  t.equal(memberAtAddress(v, '1.0'), 2)
  t.throws(() => memberAtAddress(v, '0'), { code: 'VOLUME_MEMBER', message: /0 of volume nest is a stripe of 2 members, not a disk/ })
  t.throws(() => memberAtAddress(v, '2.0'), { code: 'VOLUME_MEMBER', message: /nothing at 2\.0: a mirror has 2 children/ })
  t.throws(() => memberAtAddress(v, '0.x'), { code: 'VOLUME_MEMBER', message: /not a layout address/ })
  const p = placeOf(v, 1)
  t.match(p, { index: 1, place: 0, path: 'mirror[0]', sole: false })
  t.ok(p.layer instanceof MirrorDevice)

  const failed = await failVolumeMember(v, 1, 'by the test')
  t.equal(failed.lost, 'mirror[0], the stripe of members 0, 1 (a stripe cannot lose one disk: the whole mirror child goes)')
  t.same(v.config.members.map((m) => m.state), ['ok', 'failed', 'ok', 'ok'])
  t.equal((p.layer as MirrorDevice).status().members[0]?.state, 'failed', 'the whole leg is out')
  await t.rejects(failVolumeMember(v, 3, 'again'), { code: 'VOLUME_FAILED', message: /already runs without mirror child 0 \(members 0, 1\); failing member 3 too would lose it/ })
  await t.rejects(failVolumeMember(v, 1, 'twice'), { code: 'VOLUME_MEMBER', message: /already failed/ })
  const change = randomBytes(r, 8 * KiB)
  await v.device.write(100 * KiB, change)
  change.copy(model, 100 * KiB)

  const fresh = new MemoryDevice(MEMBER_RESERVED + DATA)
  const done = await replaceVolumeMember(v, 1, { path: 'fresh', dev: new KeepOpen(fresh) }, { stepBytes: 64 * KiB })
  t.match(done.place, { path: 'mirror[0]', sole: false })
  t.same(v.config.members.map((m) => m.state), ['ok', 'ok', 'ok', 'ok'])
  t.equal(v.config.members[1]?.rebuilt, undefined, 'a leg rebuild keeps no checkpoint')
  const mirror = p.layer as MirrorDevice
  t.same(mirror.status().members.map((m) => m.state), ['ok', 'ok'])
  mirror.fail(1)
  t.ok((await contents(v.device)).equals(model), 'leg 0 alone (disk 0 and the new disk) holds the volume, the write made while it was out included')
})

t.test('a RAID-5 of partitions: a replace closed midway resumes from its checkpoint at the next open', async (t) => {
  const seed = seedOf()
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const part = (u: string): LayoutNode => ({ kind: 'partition', offset: 64 * KiB, size: 256 * KiB, child: disk(u) })
  const disks = await nested(3, (u) => ({ kind: 'raid5', unit: 16 * KiB, children: u.map(part) }), r)
  const v = await open(disks)
  const model = randomBytes(r, v.device.size)
  await v.device.write(0, model)
  await v.device.flush()
  t.match(placeOf(v, 2), { place: 2, path: 'raid5[2]', sole: true })
  const fresh = new MemoryDevice(MEMBER_RESERVED + DATA)
  let closing: Promise<void> | undefined
  const cut = replaceVolumeMember(v, 2, { path: 'fresh', dev: new KeepOpen(fresh) }, {
    stepBytes: 32 * KiB,
    checkpointBytes: 64 * KiB,
    onCheckpoint: (at) => {
      if (at >= 128 * KiB) closing ??= v.close()
      return Promise.resolve()
    },
  })
  await t.rejects(cut, { code: 'BLOCKDEV_CLOSED' })
  await closing
  const started: (number | undefined)[] = []
  const again = await open([disks[0] as MemoryDevice, disks[1] as MemoryDevice, fresh], { onEvent: (e) => { if (e.kind === 'rebuild-started') started.push(e.offset) } })
  try {
    t.strictSame(started, [128 * KiB], 'the partition\'s rebuild resumed at its checkpoint')
    t.same(again.config.members.map((m) => m.state), ['ok', 'ok', 'ok'])
    const layer = again.device
    if (!(layer instanceof Raid5Device)) throw new Error('a RAID-5 on top')
    layer.fail(0)
    t.ok((await contents(again.device)).equals(model), 'without member 0, the rebuilt partition holds its part')
  } finally {
    await again.close()
  }
})

t.test('a span or stripe alone: nothing above a member survives its loss', async (t) => {
  const disks = await nested(2, (u) => ({ kind: 'stripe', unit: 16 * KiB, children: [disk(u[0] ?? ''), disk(u[1] ?? '')] }), rng(1))
  const v = await open(disks)
  t.teardown(() => v.close())
  t.throws(() => placeOf(v, 0), { code: 'VOLUME_LAYOUT', message: /no mirror or RAID-5 above member 0/ })
  t.throws(() => placeOf(v, 5), { code: 'VOLUME_MEMBER', message: /has no member 5/ })
})
