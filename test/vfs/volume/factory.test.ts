/*
 * The real layer factory and openVolume: a volume made by createVolume assembles into the real
 * layers (RAID-5 over partitions, a mirror of two); the zeroed intent areas createVolume leaves
 * are formatted at the first read-write open and stand for a clean log read-only; a damaged
 * bitmap is refused; openVolume closes every disk it opened when assembly fails; the write
 * intent's dirty regions are resynced at a read-write open.
 */
import t from 'tap'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { createVolume } from '../../../vfs/volume/create-volume.ts'
import { openIntentBitmap, redundantLayers } from '../../../vfs/volume/factory.ts'
import { INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import { bitmapCopyLength } from '../../../vfs/volume/intent-bitmap.ts'
import { MirrorDevice } from '../../../vfs/volume/mirror.ts'
import { openVolume } from '../../../vfs/volume/open-volume.ts'
import { PartitionDevice } from '../../../vfs/volume/partition.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { StripeDevice } from '../../../vfs/volume/stripe.ts'
import { seededRandom } from './assemble-helpers.ts'

const MiB = 1024 * 1024

async function files(dir: string, names: string[], size = 4 * MiB): Promise<string[]> {
  const paths = names.map((n) => path.join(dir, n))
  for (const p of paths) await (await ImageFile.create(p, size)).close()
  return paths
}

async function create(paths: string[], level: 'raid5' | 'mirror' | 'stripe', name: string): Promise<void> {
  const disks = []
  for (const p of paths) disks.push({ path: p, dev: await ImageFile.open(p) })
  await createVolume(name, level, disks, { random: seededRandom(name) })
  for (const d of disks) await d.dev.close()
}

t.test('RAID-5 on image files: the real layers, bytes through them land where the layout says', async (t) => {
  const paths = await files(t.testdir(), ['a', 'b', 'c'])
  await create(paths, 'raid5', 'r5')
  const v = await openVolume(paths)
  const r5 = v.device
  if (!(r5 instanceof Raid5Device)) throw new Error('the root is not a Raid5Device')
  t.ok(r5.members.every((m) => m instanceof PartitionDevice), 'over partitions of the disks')
  t.equal(v.device.size, 2 * 3 * MiB, 'two data members of 3 MiB (4 MiB less the reserved MiB)')
  t.strictSame(redundantLayers(v.device), [v.device])
  t.equal(v.intents.length, 1, 'one write-intent log')
  // Stripe 0 of left-symmetric RAID-5 on 3: data 0 on member 0, data 1 on member 1, parity on 2.
  const unit = 64 * 1024
  await v.device.write(0, Buffer.alloc(unit, 0x0f))
  await v.device.write(unit, Buffer.alloc(unit, 0xf0))
  await v.device.flush()
  await v.close()
  for (const [i, byte] of [0x0f, 0xf0, 0xff].entries()) {
    const dev = await ImageFile.open(paths[i]!, { readOnly: true })
    t.ok((await dev.read(MEMBER_RESERVED, unit)).equals(Buffer.alloc(unit, byte)), `member ${i}'s first unit is 0x${byte.toString(16)}`)
    await dev.close()
  }
})

t.test('a stripe has no redundant layer and no intent log; a mirror has both', async (t) => {
  const dir = t.testdir()
  const s = await files(dir, ['s0', 's1'])
  await create(s, 'stripe', 'st')
  const v = await openVolume(s, { readOnly: true })
  t.ok(v.device instanceof StripeDevice)
  t.strictSame(redundantLayers(v.device), [])
  t.equal(v.intents.length, 0)
  await v.close()
  const m = await files(dir, ['m0', 'm1'])
  await create(m, 'mirror', 'mi')
  const w = await openVolume(m, { readOnly: true })
  t.ok(w.device instanceof MirrorDevice)
  t.equal(w.intents.length, 1)
  await w.close()
})

t.test('openIntentBitmap: zeroed areas are formatted read-write, a clean log read-only, damage refused', async (t) => {
  const copies = [new MemoryDevice(MEMBER_RESERVED), new MemoryDevice(MEMBER_RESERVED)].map((dev) => ({ dev, offset: INTENT_OFFSET, length: INTENT_LENGTH }))
  const ro = [0, 1].map(() => ({ dev: new MemoryDevice(MEMBER_RESERVED, { readOnly: true }), offset: INTENT_OFFSET, length: INTENT_LENGTH }))
  const clean = await openIntentBitmap(ro, 64 * MiB, MiB)
  t.strictSame(clean.dirtyAtOpen(), [], 'read-only and never written: a clean log')
  await clean.mark(0, 10, 1)
  await clean.close()

  const log = await openIntentBitmap(copies, 64 * MiB, MiB)
  t.equal(log.regionSize, MiB)
  await log.mark(3 * MiB, 10, 1)
  await log.close()
  t.ok((await copies[0]!.dev.read(INTENT_OFFSET, 8)).equals(Buffer.from('TSNFSWIB')), 'formatted')
  const again = await openIntentBitmap(copies, 64 * MiB, MiB)
  t.strictSame(again.dirtyAtOpen(), [{ offset: 3 * MiB, length: MiB }], 'the mark survived')
  await again.close()

  for (const c of copies) await c.dev.write(INTENT_OFFSET + 20, Buffer.from('damage'))
  const slot = bitmapCopyLength(64 * MiB, { regionSize: MiB }) / 2
  for (const c of copies) await c.dev.write(INTENT_OFFSET + slot + 20, Buffer.from('damage'))
  await t.rejects(openIntentBitmap(copies, 64 * MiB, MiB), { code: 'VOLUME_BITMAP' }, 'neither zeroed nor valid')
})

t.test('openVolume: a failed assembly closes every disk it opened', async (t) => {
  const dir = t.testdir()
  const a = await files(dir, ['x0', 'x1', 'x2'])
  await create(a, 'raid5', 'x')
  const plain = (await files(dir, ['plain']))[0]!
  await t.rejects(openVolume([...a, plain]), { code: 'VOLUME_NO_SUPERBLOCK', message: /plain/ })
  // Read-write opens lock the files: had any stayed open, this would be BLOCKDEV_LOCKED.
  const v = await openVolume([...a])
  t.equal(v.config.name, 'x')
  await v.close()
  await t.rejects(openVolume(a, { volume: 'y' }), { code: 'VOLUME_FOREIGN' })
  const w = await openVolume(a)
  await w.close()
})

t.test('a read-write open resyncs the regions a crash left dirty', async (t) => {
  const paths = await files(t.testdir(), ['d0', 'd1', 'd2'])
  await create(paths, 'raid5', 'crash')
  const v = await openVolume(paths)
  await v.device.write(0, Buffer.alloc(4096, 7))
  await v.device.flush()
  // The crash: region 0 marked by a write still running (its generation above any horizon, so
  // even a clean close keeps the bit, as a crash would), and member 2 (stripe 0's parity) damaged.
  await v.intents[0]!.mark(0, 4096, Number.MAX_SAFE_INTEGER)
  await v.close()
  const p2 = await ImageFile.open(paths[2]!)
  await p2.write(MEMBER_RESERVED, Buffer.alloc(4096, 0x55))
  await p2.close()
  const ro = await openVolume(paths, { readOnly: true })
  if (!(ro.device instanceof Raid5Device)) throw new Error('not RAID-5')
  t.equal((await ro.device.scrub()).mismatches, 1, 'read-only: the damage is there')
  await ro.close()
  const rw = await openVolume(paths)
  if (!(rw.device instanceof Raid5Device)) throw new Error('not RAID-5')
  t.equal((await rw.device.scrub()).mismatches, 0, 'read-write: resynced at open')
  await rw.close()
})
