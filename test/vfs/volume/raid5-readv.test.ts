/*
 * A RAID-5 read of many units with every member in service reads each member once (readv over
 * the span its units cover, the parity units between them into scratch; raid5/read-path.ts
 * readPerMember). Here: ImageFile.readv and PartitionDevice.readv fill their targets back to back
 * and refuse what readInto refuses; the volume's reads through readv return the bytes written,
 * at any offset and length; a member whose readv fails sends the read unit by unit, which marks a
 * dead member failed and reconstructs its units.
 */
import t from 'tap'
import { join } from 'node:path'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { PartitionDevice } from '../../../vfs/volume/partition.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import { pattern } from './raid5-helpers.ts'

const UNIT = 4096
const STRIPES = 32
const RESERVED = 8192

/** A member counting its readv calls; `fails`: readv fails (EIO); `dead`: readInto too. */
class Member extends PassThroughDevice {
  readvCalls = 0
  readonly mode: 'ok' | 'fails' | 'dead'
  constructor(inner: BlockDevice, mode: 'ok' | 'fails' | 'dead') {
    super(inner)
    this.mode = mode
  }

  async readv(offset: number, targets: readonly Uint8Array[]): Promise<void> {
    this.readvCalls++
    if (this.mode !== 'ok') throw Object.assign(new Error('readv: input/output error'), { code: 'EIO' })
    const inner = this.inner
    if (inner.readv === undefined) throw new Error('inner device has no readv')
    return inner.readv(offset, targets)
  }

  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    if (this.mode === 'dead') throw Object.assign(new Error('read: input/output error'), { code: 'EIO' })
    return super.readInto(offset, target)
  }
}

async function members(dir: string, count: number): Promise<BlockDevice[]> {
  const out: BlockDevice[] = []
  for (let i = 0; i < count; i++) out.push(new PartitionDevice(await ImageFile.create(join(dir, `m${i}`), RESERVED + STRIPES * UNIT), RESERVED, STRIPES * UNIT))
  return out
}

t.test('ImageFile.readv and PartitionDevice.readv: the targets back to back; range and empty targets', async (t) => {
  const dir = t.testdir()
  const img = await ImageFile.create(join(dir, 'img'), 8192)
  t.teardown(() => img.close())
  await img.write(1000, Buffer.from('abcdefgh!'))
  const a = Buffer.alloc(3)
  const b = Buffer.alloc(5)
  await img.readv(1000, [a, Buffer.alloc(0), b])
  t.equal(a.toString('latin1') + b.toString('latin1'), 'abcdefgh')
  await t.rejects(img.readv(8190, [Buffer.alloc(2), Buffer.alloc(1)]), { code: 'BLOCKDEV_RANGE' })
  const part = new PartitionDevice(img, 512, 1024)
  const c = Buffer.alloc(2)
  const d = Buffer.alloc(1)
  await part.readv(1000 - 512, [c, d])
  t.equal(c.toString('latin1') + d.toString('latin1'), 'abc')
  await t.rejects(part.readv(1023, [Buffer.alloc(1), Buffer.alloc(1)]), { code: 'BLOCKDEV_RANGE' })
  const mem = new MemoryDevice(2048)
  await mem.write(1024, Buffer.from('pqr'))
  const onMem = new PartitionDevice(mem, 1024, 1024)
  const e = Buffer.alloc(1)
  const f = Buffer.alloc(2)
  await onMem.readv(0, [e, f])
  t.equal(e.toString('latin1') + f.toString('latin1'), 'pqr', 'readInto piece by piece where the device has no readv')
})

t.test('RAID-5 reads through readv return what was written, at any offset and length', async (t) => {
  for (const n of [3, 4]) {
    const devs = (await members(t.testdir(), n)).map((d) => new Member(d, 'ok'))
    const vol = new Raid5Device(devs, { unit: UNIT })
    t.teardown(() => vol.close())
    const data = pattern(vol.size, n)
    await vol.write(0, data)
    // Whole volume, unit-aligned runs, odd offsets and lengths inside units, a short read.
    for (const [at, len] of [
      [0, vol.size],
      [UNIT, 9 * UNIT],
      [UNIT * 3 + 17, UNIT * 11 + 5],
      [5, 2 * n * UNIT],
      [vol.size - 7 * UNIT - 1, 7 * UNIT + 1],
      [100, 10],
    ] as const) {
      t.ok((await vol.read(at, len)).equals(data.subarray(at, at + len)), `${n} members: ${len} bytes at ${at}`)
    }
    // The five long reads went member by member; the 10-byte one unit by unit.
    t.equal(devs.reduce((sum, d) => sum + d.readvCalls, 0), 5 * n, `${n} members: one readv per member for each long read`)
  }
})

t.test('A failing readv: the read goes unit by unit; a dead member is marked failed and its units rebuilt', async (t) => {
  for (const dead of [false, true]) {
    const devs = await members(t.testdir(), 3)
    const bad = new Member(devs[1]!, dead ? 'dead' : 'fails')
    const vol = new Raid5Device([devs[0]!, bad, devs[2]!], { unit: UNIT })
    t.teardown(() => vol.close())
    const data = pattern(vol.size, 9)
    await vol.write(0, data)
    const at = UNIT + 3
    const len = 12 * UNIT
    t.ok((await vol.read(at, len)).equals(data.subarray(at, at + len)), `${dead ? 'dead' : 'readv only'}: every byte right`)
    t.equal(bad.readvCalls, 1, 'readv was tried')
    t.equal(vol.status().members[1]?.state, dead ? 'failed' : 'ok', dead ? 'the dead member is marked failed' : 'the member stays in service')
  }
})
