/*
 * The snapshot store placed in a volume: the configuration field (optional, checked, capped),
 * its size from bytes or a percentage, formatted at create at the top layer's end (exact
 * offsets on a mirror leg), opened at assemble as the origin the engine uses, snapshots kept
 * across a reopen; a volume without a store refuses snapshots with an exact message.
 */
import t from 'tap'
import { join } from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { validateConfig } from '../../../vfs/volume/config.ts'
import { createVolume } from '../../../vfs/volume/create-volume.ts'
import { LAYERS } from '../../../vfs/volume/factory.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import { openVolume } from '../../../vfs/volume/open-volume.ts'
import { OriginDevice } from '../../../vfs/volume/snapshot.ts'
import { STORE_MAGIC } from '../../../vfs/volume/snapshot-format.ts'
import { storeConfigFor } from '../../../vfs/volume/snapshot-volume.ts'
import { createVolumeSnapshot, listVolumeSnapshots } from '../../../server/volume-snapshots.ts'

const MiB = 1024 * 1024
const uuid = (i: number): string => i.toString(16).padStart(32, '0')

function base(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1, name: 'v', id: 'ab'.repeat(16), seq: 1,
    root: { kind: 'mirror', children: [0, 1].map((i) => ({ kind: 'disk', member: uuid(i) })) },
    members: [0, 1].map((i) => ({ uuid: uuid(i), size: 16 * MiB, state: 'ok' })),
    snapshots: [], flags: { intentBitmap: true, regionSize: MiB },
    ...over,
  }
}

t.test('configuration: snapshotStore is optional, checked and capped', async (t) => {
  t.notOk('snapshotStore' in validateConfig(base()), 'a configuration without it stays valid and gains nothing')
  const c = validateConfig(base({ snapshotStore: { chunkSize: 65536, size: 4 * MiB } }))
  t.strictSame(c.snapshotStore, { size: 4 * MiB, chunkSize: 65536 })
  t.strictSame(Object.keys(c), ['version', 'name', 'id', 'seq', 'root', 'members', 'snapshots', 'flags', 'snapshotStore'], 'last, in a fixed order')
  t.strictSame(validateConfig(JSON.parse(JSON.stringify(c))), c, 'survives JSON')
  const bad: [string, unknown, RegExp][] = [
    ['chunk not a power of two', { size: 4 * MiB, chunkSize: 12288 }, /snapshotStore\.chunkSize: 12288 is not a power of two/],
    ['chunk too small', { size: 4 * MiB, chunkSize: 2048 }, /snapshotStore\.chunkSize: 2048 is not an integer in \[4096, 16777216\]/],
    ['size not whole chunks', { size: 4 * MiB + 4096, chunkSize: 65536 }, /snapshotStore\.size: 4198400 is not an integer in \[1048576, 33554432\] and a multiple of 65536/],
    ['size past the members', { size: 64 * MiB, chunkSize: 65536 }, /snapshotStore\.size: 67108864 is not an integer in \[1048576, 33554432\]/],
    ['size below the minimum', { size: 65536, chunkSize: 65536 }, /snapshotStore\.size: 65536 is not an integer in \[1048576/],
    ['a length as a string', { size: '4194304', chunkSize: 65536 }, /snapshotStore\.size: "4194304" is not an integer/],
    ['unknown field', { size: 4 * MiB, chunkSize: 65536, where: 1 }, /snapshotStore: unknown field 'where'/],
    ['missing field', { size: 4 * MiB }, /snapshotStore: missing field 'chunkSize'/],
    ['not an object', [], /snapshotStore: not an object/],
  ]
  for (const [what, store, message] of bad) t.throws(() => validateConfig(base({ snapshotStore: store })), { code: 'VOLUME_LAYOUT', message }, what)
})

t.test('store size: bytes or a percentage, whole chunks, leaving room for the file system', async (t) => {
  t.strictSame(storeConfigFor(100 * MiB, { percent: 25 }), { size: 25 * MiB, chunkSize: 65536 })
  // 10% of 47 MiB is 4928307.2 bytes: 75 whole 64 KiB chunks.
  t.strictSame(storeConfigFor(47 * MiB, { percent: 10 }), { size: 75 * 65536, chunkSize: 65536 })
  t.strictSame(storeConfigFor(47 * MiB, { bytes: 4 * MiB + 1000 }), { size: 4 * MiB, chunkSize: 65536 })
  t.throws(() => storeConfigFor(47 * MiB, { percent: 0 }), { code: 'VOLUME_LAYOUT', message: /snapshot store 0%: a whole percentage from 1 to 90/ })
  t.throws(() => storeConfigFor(47 * MiB, { percent: 91 }), { code: 'VOLUME_LAYOUT' })
  t.throws(() => storeConfigFor(47 * MiB, { bytes: 512 * 1024 }), { code: 'VOLUME_LAYOUT', message: /snapshot store of 524288 bytes: at least 1048576 bytes/ })
  t.throws(() => storeConfigFor(4 * MiB, { bytes: 3.5 * MiB }), { code: 'VOLUME_LAYOUT', message: /leaves 524288 of the volume's 4194304 bytes for the file system/ })
})

async function makeDisks(dir: string, n: number, size: number, prefix = 'd'): Promise<{ path: string; dev: ImageFile }[]> {
  const out = []
  for (let i = 0; i < n; i++) {
    const path = join(dir, `${prefix}${i}.img`)
    out.push({ path, dev: await ImageFile.create(path, size) })
  }
  return out
}

t.test('a mirror with a store: formatted at the end of the top layer, the origin at open, snapshots across a reopen', async (t) => {
  const dir = t.testdir()
  const disks = await makeDisks(dir, 2, 17 * MiB)
  const made = await createVolume('snapvol', 'mirror', disks, { snapshotStore: { bytes: 4 * MiB }, layers: LAYERS })
  const top = 16 * MiB
  t.strictSame(made.config.snapshotStore, { size: 4 * MiB, chunkSize: 65536 }, 'recorded in the configuration')
  for (const d of disks) {
    // The store's header at data offset + (top size − store size) on each leg: as redundant as the data.
    t.ok((await d.dev.read(MEMBER_RESERVED + top - 4 * MiB, 8)).equals(STORE_MAGIC), `${d.path}: the store header at byte ${MEMBER_RESERVED + top - 4 * MiB}`)
    await d.dev.close()
  }
  t.throws(() => storeConfigFor(top, { bytes: top }), { code: 'VOLUME_LAYOUT' })
  const others = await makeDisks(dir, 2, 17 * MiB, 'other')
  await t.rejects(createVolume('x', 'mirror', others, { snapshotStore: { bytes: MiB } }), {
    code: 'VOLUME_LAYOUT', message: /a snapshot store needs the layers to format it through/,
  })
  for (const d of others) await d.dev.close()

  const paths = disks.map((d) => d.path)
  const v = await openVolume(paths)
  t.ok(v.origin instanceof OriginDevice, 'the origin layer is opened')
  t.equal(v.device, v.origin, 'and is the device the engine uses')
  t.equal(v.device.size, top - 4 * MiB, 'the file system gets [0, top - store)')
  await v.device.write(0, Buffer.alloc(65536, 1))
  const s = await createVolumeSnapshot(v, 'first')
  t.equal(s.name, 'first')
  await v.device.write(0, Buffer.alloc(65536, 2))
  const snap = v.origin?.snapshot('first')
  t.ok((await snap?.read(0, 65536))?.equals(Buffer.alloc(65536, 1)), 'the snapshot keeps the old chunk')
  await v.close()

  const again = await openVolume(paths, { readOnly: true })
  t.strictSame(listVolumeSnapshots(again).map((x) => [x.name, x.state]), [['first', 'live']], 'the snapshot survives a reopen')
  t.ok((await again.origin?.snapshot('first').read(0, 16))?.equals(Buffer.alloc(16, 1)))
  t.ok((await again.device.read(0, 16)).equals(Buffer.alloc(16, 2)))
  await again.close()
})

t.test('a volume without a store: no origin, and a snapshot is refused with an exact message', async (t) => {
  const dir = t.testdir()
  const disks = await makeDisks(dir, 1, 8 * MiB)
  await createVolume('plain', 'span', disks)
  for (const d of disks) await d.dev.close()
  const v = await openVolume(disks.map((d) => d.path))
  t.equal(v.origin, undefined)
  t.equal(v.device.size, 7 * MiB, 'the whole data area')
  await t.rejects(createVolumeSnapshot(v, 's'), { code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: volume plain has no snapshot store (create it with --snapshot-store SIZE)' })
  t.throws(() => listVolumeSnapshots(v), { code: 'VOLUME_SNAPSHOT' })
  await v.close()
})
