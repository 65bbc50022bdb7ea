/*
 * Failure paths of the allocator, each an Error with a code and nothing changed: double frees,
 * frees of metadata or of blocks outside the fs, reserved inodes; damaged images refused with
 * the damage named (a descriptor's or a bitmap's checksum, a BLOCK_UNINIT descriptor whose free
 * count its layout contradicts, a device smaller than the fs, features the allocator does not write).
 */
import t from 'tap'
import fs from 'node:fs'
import { Ext4Allocator } from '../../../vfs/engine/alloc/ext4-allocator.ts'
import { BG_BLOCK_UNINIT } from '../../../vfs/engine/format/group-desc.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { DirectTxnManager } from '../../../vfs/engine/txn/direct-txn.ts'
import { LAYOUTS, freeLists, fsck, makeImage, openAlloc } from './alloc-helpers.ts'

const layout = LAYOUTS[0] ?? { name: '4k', size: 64 << 20, blockSize: 4096, args: [] }

/** Flip bit `bit` of the byte at `offset` of file. */
function flip(file: string, offset: number, bit = 0): void {
  const fd = fs.openSync(file, 'r+')
  const b = Buffer.alloc(1)
  fs.readSync(fd, b, 0, 1, offset)
  b[0] = (b[0] ?? 0) ^ (1 << bit)
  fs.writeSync(fd, b, 0, 1, offset)
  fs.closeSync(fd)
}

t.test('wrong frees are refused with EXT4_CORRUPT and change nothing', async (t) => {
  const file = makeImage(t, layout)
  const before = freeLists(file)
  const o = await openAlloc(file, layout.blockSize)
  t.teardown(o.close)
  const { alloc, txm } = o
  const geo = alloc.geometry
  const h = await txm.begin()
  const r = await alloc.allocBlocks(h, 0, 4)
  await alloc.freeBlocks(h, r.start, 4, false)
  const free = alloc.groups.freeBlocks
  await t.rejects(alloc.freeBlocks(h, r.start, 4, false), { code: 'EXT4_CORRUPT', message: /already free/ }, 'double free')
  await t.rejects(alloc.freeBlocks(h, r.start - 1, 2, false), { code: 'EXT4_CORRUPT', message: /already free/ }, 'a run half in use, half free')
  await t.rejects(alloc.freeBlocks(h, alloc.groups.group(0).blockBitmap, 1, true), { code: 'EXT4_CORRUPT', message: /metadata/ }, 'a block bitmap')
  await t.rejects(alloc.freeBlocks(h, alloc.groups.group(1).inodeTable + 3, 1, true), { code: 'EXT4_CORRUPT', message: /metadata/ }, 'an inode table block')
  await t.rejects(alloc.freeBlocks(h, 0, 1, true), { code: 'EXT4_CORRUPT', message: /metadata/ }, 'the superblock')
  await t.rejects(alloc.freeBlocks(h, geo.blocksCount - 1, 2, false), { code: 'EXT4_CORRUPT', message: /outside/ }, 'past the end')
  await t.rejects(alloc.freeBlocks(h, 5000, 0, false), { code: 'EXT4_CORRUPT', message: /outside/ }, 'an empty run')
  t.equal(alloc.groups.freeBlocks, free, 'free count unchanged')
  const ino = await alloc.allocInode(h, 2, false)
  await alloc.freeInode(h, ino, false)
  await t.rejects(alloc.freeInode(h, ino, false), { code: 'EXT4_CORRUPT', message: /already free/ }, 'double free of an inode')
  await t.rejects(alloc.freeInode(h, 2, true), { code: 'EXT4_CORRUPT', message: /outside/ }, 'the root inode')
  await t.rejects(alloc.freeInode(h, geo.inodesCount + 1, false), { code: 'EXT4_CORRUPT', message: /outside/ }, 'past the last inode')
  await t.rejects(alloc.freeInode(h, geo.inodesPerGroup + 5, false), { code: 'EXT4_CORRUPT', message: /has none in use/ }, 'an inode of an INODE_UNINIT group')
  await t.rejects(alloc.allocBlocks(h, 0, 0), RangeError, 'a count of 0')
  await t.rejects(alloc.allocInode(h, 0, false), RangeError, 'parent 0')
  txm.end(h)
  await o.close()
  t.equal(fsck(file).status, 0, 'e2fsck -fn clean')
  t.strictSame(freeLists(file), before, 'free lists as at the start')
})

t.test('a damaged group descriptor is refused at open', async (t) => {
  const file = makeImage(t, layout)
  // Group 1's bg_free_inodes_count, in the descriptor table at block 1.
  flip(file, layout.blockSize + 64 + 0x0e, 2)
  await t.rejects(openAlloc(file, layout.blockSize), { code: 'EXT4_BAD_CHECKSUM', message: /group-desc of group 1/ })
})

t.test('a damaged block bitmap is refused when first used', async (t) => {
  const file = makeImage(t, layout)
  let o = await openAlloc(file, layout.blockSize)
  const bitmap = o.alloc.groups.group(0).blockBitmap
  await o.close()
  flip(file, bitmap * layout.blockSize + 200, 3)
  o = await openAlloc(file, layout.blockSize)
  t.teardown(o.close)
  const h = await o.txm.begin()
  await t.rejects(o.alloc.allocBlocks(h, 1000, 1), { code: 'EXT4_BAD_CHECKSUM', message: /block-bitmap of group 0/ })
  o.txm.end(h)
})

t.test('a BLOCK_UNINIT descriptor whose count the layout contradicts is refused', async (t) => {
  const file = makeImage(t, layout)
  let o = await openAlloc(file, layout.blockSize)
  const g = o.alloc.groups.groups.findIndex((s) => (s.flags & BG_BLOCK_UNINIT) !== 0)
  t.ok(g > 0, `group ${g} is BLOCK_UNINIT`)
  const h = await o.txm.begin()
  // A consistent checksum over a lying count, as a buggy writer could leave it.
  await o.alloc.groups.set(h, g, { freeBlocks: o.alloc.groups.group(g).freeBlocks - 1 })
  o.txm.end(h)
  await o.close()
  o = await openAlloc(file, layout.blockSize)
  t.teardown(o.close)
  const h2 = await o.txm.begin()
  const first = o.alloc.geometry.firstDataBlock + g * o.alloc.geometry.blocksPerGroup
  await t.rejects(o.alloc.allocBlocks(h2, first + 100, 1), { code: 'EXT4_CORRUPT', message: new RegExp(`group ${g}: BLOCK_UNINIT`) })
  o.txm.end(h2)
})

t.test('geometry the allocator cannot trust or does not write is refused', async (t) => {
  const file = makeImage(t, layout)
  const dev = await ImageFile.open(file)
  t.teardown(() => dev.close())
  const txm = new DirectTxnManager(dev, layout.blockSize)
  await t.rejects(Ext4Allocator.open(txm, dev.size - layout.blockSize), { code: 'EXT4_BAD_GEOMETRY', message: /on a device of/ }, 'device smaller than the fs')
  await t.rejects(Ext4Allocator.open(new DirectTxnManager(dev, 1024), dev.size), { code: 'EXT4_BAD_GEOMETRY' }, 'block size other than the manager\'s')
  const meta = makeImage(t, LAYOUTS[1] ?? layout, ['-O', 'meta_bg,^resize_inode'])
  const mdev = await ImageFile.open(meta)
  t.teardown(() => mdev.close())
  await t.rejects(Ext4Allocator.open(new DirectTxnManager(mdev, 1024), mdev.size), { code: 'EXT4_UNSUPPORTED_FEATURE', message: /meta_bg/ }, 'meta_bg')
})
