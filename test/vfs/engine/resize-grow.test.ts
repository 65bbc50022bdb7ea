/*
 * Growing the engine's ext4 file system (vfs/engine/resize): the plan's arithmetic pinned on a
 * known geometry; images of several sizes grown within the descriptor blocks they have and across
 * into a reserved GDT block, each judged by e2fsck -fn; refusals (shrink, too many descriptor
 * blocks, not clean) with their exact messages; and the engine filling a grown image past what
 * the old one held.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { VfsError } from '../../../vfs/errors.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { computeGeometry } from '../../../vfs/engine/mkfs/geometry.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { growFileSystem, planForDevice } from '../../../vfs/engine/resize/grow-fs.ts'
import { planGrow } from '../../../vfs/engine/resize/grow-plan.ts'
import type { FsShape } from '../../../vfs/engine/resize/grow-plan.ts'
import { mkfs as mkfsExt4, scratch, sh } from './format-helpers.ts'
import { dumpe2fs, e2fsck, superblockOf } from './mkfs-helpers.ts'

const MiB = 2 ** 20
const owner = { uid: 0, gid: 0 }

async function image(t: Test, name: string, size: number, blockSize: 1024 | 4096): Promise<string> {
  const file = path.join(scratch(t, 'resize'), name)
  const dev = await ImageFile.create(file, size)
  await makeFileSystem(dev, { zeroed: true, blockSize })
  await dev.close()
  return file
}

async function grow(file: string, size: number): Promise<Awaited<ReturnType<typeof growFileSystem>>> {
  fs.truncateSync(file, size)
  const dev = await ImageFile.open(file)
  try {
    return await growFileSystem(dev)
  } finally {
    await dev.close()
  }
}

function clean(t: Test, file: string, what: string): void {
  const r = e2fsck(file)
  if (r.status !== 0) t.comment(r.out)
  t.equal(r.status, 0, `e2fsck -fn clean ${what}`)
}

function shapeOf(size: number, blockSize: 1024 | 4096): FsShape {
  const g = computeGeometry({ size, blockSize })
  return {
    blockSize, firstDataBlock: g.firstDataBlock, blocksCount: g.blocksCount, blocksPerGroup: g.blocksPerGroup, inodesPerGroup: g.inodesPerGroup,
    inodeSize: 256, descSize: 64, reservedGdtBlocks: g.reservedGdtBlocks, sparseSuper: true, is64bit: true,
  }
}

t.test('plan: 32 MiB of 1 KiB blocks grown to 200 MiB', async (t) => {
  const p = planGrow(shapeOf(32 * MiB, 1024), 200 * 1024)
  if (p === undefined) throw new Error('no plan')
  // 4 groups of 8192 from block 1; 25 groups need a second descriptor block (16 per block), taken from the 255 reserved.
  t.match(p, { oldBlocks: 32768, newBlocks: 204800, oldGroups: 4, newGroups: 25, oldDescBlocks: 1, newDescBlocks: 2, newReservedGdt: 254, inodeTableBlocks: 512 })
  t.equal(p.lastGroupGain, 1, 'group 3 ended at block 32767; it now runs to 32768')
  // Group 4 holds no backup: its tables start at its first block. Group 5 does: superblock, 2 GDT, 254 reserved.
  t.strictSame(p.groups[0], { group: 4, first: 32769, length: 8192, superBlocks: 0, blockBitmap: 32769, inodeBitmap: 32770, inodeTable: 32771, freeBlocks: 8192 - 514 })
  t.strictSame(p.groups[1], { group: 5, first: 40961, length: 8192, superBlocks: 257, blockBitmap: 41218, inodeBitmap: 41219, inodeTable: 41220, freeBlocks: 8192 - 257 - 514 })
  // 204800 blocks: the last group (24) runs from 196609 to 204799, 8191 blocks.
  t.strictSame(p.groups.at(-1), { group: 24, first: 196609, length: 8191, superBlocks: 0, blockBitmap: 196609, inodeBitmap: 196610, inodeTable: 196611, freeBlocks: 8191 - 514 })
  // Backups among groups 4..24: 5, 7, 9 and 25 is beyond; 21 groups of 514 table blocks and 3 of 257.
  t.equal(p.newOverhead, 21 * 514 + 3 * 257)
})

t.test('plan: a last group too short for its tables and 50 blocks is left off', async (t) => {
  const shape = shapeOf(32 * MiB, 1024)
  // Group 4 would get 514 + 49 blocks: dropped; what is left is group 3's last block.
  t.match(planGrow(shape, 32769 + 514 + 49), { newBlocks: 32769, newGroups: 4, lastGroupGain: 1, groups: [] })
  t.equal(planGrow(shape, 32769 + 514 + 50)?.newBlocks, 32769 + 514 + 50)
  t.equal(planGrow(shape, 32768), undefined, 'the same size: nothing to grow')
})

t.test('plan refuses shrinking and sizes beyond the reserved GDT blocks, with exact messages', async (t) => {
  const shape = shapeOf(32 * MiB, 1024)
  t.throws(() => planGrow(shape, 30000), { code: 'RESIZE_SHRINK', message: 'the file system has 32768 blocks; 30000 would shrink it, and resize only grows' })
  // 1 + 255 descriptor blocks of 16 groups of 8192 blocks, from block 1.
  const max = 1 + 256 * 16 * 8192
  t.equal(planGrow(shape, max)?.newDescBlocks, 256)
  t.throws(() => planGrow(shape, max + 1024), {
    code: 'RESIZE_NO_GDT_ROOM',
    message: `${max + 1024} blocks need 257 group descriptor blocks; the file system has 1 and 255 reserved for growth, enough for ${max} blocks at most`,
  })
  t.equal(planGrow({ ...shape, reservedGdtBlocks: 0 }, 16 * 8192)?.newGroups, 16, 'without reserved blocks: up to the one descriptor block')
  t.throws(() => planGrow({ ...shape, reservedGdtBlocks: 0 }, 16 * 8192 + 1024), { code: 'RESIZE_NO_GDT_ROOM' })
})

const SIZES: ReadonlyArray<readonly [string, 1024 | 4096, number, number]> = [
  ['4 KiB blocks, the last group only', 4096, 64 * MiB, 100 * MiB],
  ['4 KiB blocks, 1 group to 8 in the same descriptor block', 4096, 64 * MiB, 1024 * MiB],
  ['1 KiB blocks, 4 groups to 25: into a reserved GDT block', 1024, 32 * MiB, 200 * MiB],
  ['1 KiB blocks, 1 group to 125: 7 reserved GDT blocks taken', 1024, 8 * MiB, 1000 * MiB],
]

for (const [name, bs, from, to] of SIZES) {
  t.test(`grow: ${name}`, async (t) => {
    const file = await image(t, 'g.img', from, bs)
    const before = superblockOf(file)
    const r = await grow(file, to)
    t.ok(r.grown, `${r.oldBlocks} to ${r.newBlocks} blocks, ${r.oldGroups} to ${r.newGroups} groups, ${r.gdtBlocksAdded} GDT blocks added`)
    t.equal(r.newBlocks, to / bs, 'all of the device')
    clean(t, file, 'after the grow')
    const sb = superblockOf(file)
    t.equal(sb.blocksCountLo, to / bs)
    t.equal(sb.inodesCount, before.inodesPerGroup * r.newGroups, 'inodes of every group')
    t.equal(sb.reservedGdtBlocks, before.reservedGdtBlocks - r.gdtBlocksAdded)
    t.equal(sb.featureIncompat & 0x4, 0, 'needs_recovery is clear again')
    const h = dumpe2fs(file, true).fields
    t.equal(h.get('Block count'), String(to / bs), 'dumpe2fs agrees')
    t.equal(h.get('Filesystem state'), 'clean')
    const again = await grow(file, to)
    t.notOk(again.grown, 'a second grow to the same size changes nothing')
  })
}

t.test('images made by mkfs.ext4 grow too (with and without a journal), and resize2fs grows ours further', async (t) => {
  const dir = scratch(t, 'resize-ref')
  const withJournal = path.join(dir, 'j.img')
  mkfsExt4(withJournal, 64 * MiB, ['-b', '4096'])
  t.match(await grow(withJournal, 600 * MiB), { oldBlocks: 16384, newBlocks: 153600, newGroups: 5, grown: true })
  clean(t, withJournal, 'after growing a mkfs.ext4 image')
  const noJournal = path.join(dir, 'n.img')
  mkfsExt4(noJournal, 64 * MiB, ['-b', '1024', '-O', '^has_journal'])
  t.match(await grow(noJournal, 300 * MiB), { oldGroups: 8, newGroups: 38, gdtBlocksAdded: 2, grown: true }, 'no journal: the writes ordered, superblock last')
  clean(t, noJournal, 'after growing one without a journal')
  fs.truncateSync(noJournal, 400 * MiB)
  sh('resize2fs', [noJournal])
  clean(t, noJournal, 'after resize2fs grew our grown file system further')
  t.equal(superblockOf(noJournal).blocksCountLo, 400 * 1024, 'resize2fs took it to 400 MiB')
})

t.test('grow twice, then the engine fills the new space: more than the old size held', async (t) => {
  const file = await image(t, 'fill.img', 16 * MiB, 1024)
  await grow(file, 24 * MiB)
  const r = await grow(file, 48 * MiB)
  t.equal(r.newBlocks, 48 * 1024)
  clean(t, file, 'after two grows')
  const e = await openEngine(file)
  const chunk = Buffer.alloc(256 * 1024, 0x5a)
  let written = 0
  let err: unknown
  try {
    for (let files = 0; ; files++) {
      const { ref } = await e.create(e.root(), Buffer.from(`f${files}`), { how: 'guarded', attr: {} }, owner)
      for (let off = 0; off < 4 * MiB; off += chunk.length) {
        await e.write(ref, BigInt(off), chunk, 'unstable')
        written += chunk.length
      }
    }
  } catch (caught) {
    err = caught
  }
  t.ok(err instanceof VfsError && err.code === 'ENOSPC', `ENOSPC after ${written} bytes (${(err as Error).message})`)
  t.ok(written > 40 * MiB, `${written} bytes written: more than the 16 MiB image could hold`)
  await e.close()
  clean(t, file, 'after the engine filled it')
})

t.test('refusals on a device: shrink, not clean, too many descriptor blocks', async (t) => {
  const dev = new MemoryDevice(8 * MiB)
  await makeFileSystem(dev, { zeroed: true, blockSize: 1024 })
  const small = MemoryDevice.fromBuffer(dev.toBuffer().subarray(0, 4 * MiB))
  await t.rejects(planForDevice(small), { code: 'RESIZE_SHRINK', message: 'the file system has 8192 blocks; 4096 would shrink it, and resize only grows' })
  // 8 MiB of 1 KiB blocks: 1 descriptor block and 63 reserved, 64 * 16 groups of 8192 blocks at most.
  const huge = new MemoryDevice(9 * 1024 * MiB)
  await huge.write(0, dev.toBuffer())
  await t.rejects(planForDevice(huge), { code: 'RESIZE_NO_GDT_ROOM', message: `${9 * MiB} blocks need 72 group descriptor blocks; the file system has 1 and 63 reserved for growth, enough for ${1 + 1024 * 8192} blocks at most` })
  const fits = await planForDevice(huge, { blocks: 1 + 1024 * 8192 })
  t.equal(fits.plan?.newGroups, 1024, 'the largest size that fits plans')
  // A file system not cleanly unmounted (s_state without VALID) is not grown.
  const raw = dev.toBuffer()
  const sb = raw.subarray(1024, 2048)
  sb.writeUInt16LE(0, 0x3a)
  const { superblockCsum } = await import('../../../vfs/engine/reader/csum-verifier.ts')
  sb.writeUInt32LE(superblockCsum(sb), 0x3fc)
  const dirty = new MemoryDevice(16 * MiB)
  await dirty.write(0, raw)
  await t.rejects(growFileSystem(dirty), { code: 'RESIZE_NOT_CLEAN', message: 'the file system was not cleanly unmounted; run fsck (and mount once if the journal needs it) before resizing' })
  await t.rejects(growFileSystem(new MemoryDevice(16 * MiB)), { code: 'RESIZE_BAD_FS', message: 'no ext4 superblock at byte 1024' })
})
