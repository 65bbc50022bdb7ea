/*
 * Failure paths, with exact codes: ENOSPC leaves the tree, i_blocks and the bitmaps as they were
 * (tree blocks are reserved before anything changes); offsets past the format's reach are EFBIG;
 * a damaged tree block (checksum, magic, depth, pointer) is EXT4_CORRUPT naming the block; a
 * block-mapped inode is ENOTSUP.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { decodeExtentIndex, EXTENT_HEADER_SIZE } from '../../../vfs/engine/format/extent.ts'
import { INODE_FLAGS } from '../../../vfs/engine/format/inode.ts'
import { ExtentTree } from '../../../vfs/engine/extent/tree.ts'
import { closeFs, FILE_INO, makeFs, openFs, readInode, writeInode } from './extent-helpers.ts'
import type { Fs } from './extent-helpers.ts'

/** n one-block extents at lblk 0, 2, 4, ... (holes between them, so they never merge). */
async function spaced(f: Fs, n: number): Promise<void> {
  const h = await f.tm.begin()
  await f.alloc.initAll(h)
  const inode = await readInode(f, h, FILE_INO)
  for (let k = 0; k < n; k++) await f.tree.mapOrAllocate(h, FILE_INO, inode, 2 * k, 1, 0)
  inode.size = 2 * n * f.bs
  await writeInode(f, h, FILE_INO, inode)
  f.tm.end(h)
}

t.test('ENOSPC while a full root would grow leaves everything as it was', async (t) => {
  const f = await makeFs(t, { bs: 4096, mib: 16 })
  await spaced(f, 4)
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  const before = { root: Buffer.from(inode.block), blocks: inode.blocks, bitmaps: await f.alloc.snapshot(h) }
  f.alloc.failAfter = 1 // the data block is found; the new tree block is not
  await t.rejects(f.tree.mapOrAllocate(h, FILE_INO, inode, 100, 1, 0), { code: 'ENOSPC' }, 'ENOSPC from the tree-block reservation')
  t.same({ root: inode.block, blocks: inode.blocks, bitmaps: await f.alloc.snapshot(h) }, before, 'root, i_blocks and bitmaps unchanged')
  f.alloc.failAfter = 0
  await t.rejects(f.tree.mapOrAllocate(h, FILE_INO, inode, 100, 1, 0), { code: 'ENOSPC' }, 'ENOSPC for the data block')
  t.same({ root: inode.block, blocks: inode.blocks, bitmaps: await f.alloc.snapshot(h) }, before, 'still unchanged')
  f.tm.end(h)
})

t.test('space running out part way gives a short mapping, not an error', async (t) => {
  const f = await makeFs(t, { bs: 4096, mib: 16 })
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  f.alloc.fragment = true
  f.alloc.failAfter = 2
  const runs = await f.tree.mapOrAllocate(h, FILE_INO, inode, 0, 10, 0)
  t.same(runs.map((r) => [r.lblk, r.count, r.fresh]), [[0, 1, true], [1, 1, true]], 'the two blocks found, in order')
  t.match(await f.tree.lookup(h, FILE_INO, inode, 2), { holeEnd: Infinity }, 'the rest is still a hole')
  t.equal(inode.blocks, 2 * 8, 'i_blocks counts the two')
  f.tm.end(h)
})

t.test('ENOSPC while a middle punch would split a full leaf frees nothing', async (t) => {
  const f = await makeFs(t, { bs: 4096, mib: 16 })
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  // 340 three-block extents fill the only leaf exactly.
  for (let k = 0; k < 340; k++) await f.tree.mapOrAllocate(h, FILE_INO, inode, 4 * k, 3, 0)
  t.equal(inode.block.readUInt16LE(2), 1, 'one full leaf under the root')
  const before = { root: Buffer.from(inode.block), blocks: inode.blocks, bitmaps: await f.alloc.snapshot(h) }
  f.alloc.failAfter = 0
  await t.rejects(f.tree.punch(h, FILE_INO, inode, 4 * 7 + 1, 1), { code: 'ENOSPC' }, 'ENOSPC')
  t.same({ root: inode.block, blocks: inode.blocks, bitmaps: await f.alloc.snapshot(h) }, before, 'root, i_blocks and bitmaps unchanged')
  t.match(await f.tree.lookup(h, FILE_INO, inode, 4 * 7 + 1), { extent: { block: 28, len: 3 } }, 'the extent is whole')
  f.tm.end(h)
})

t.test('offsets past the last logical block are EFBIG; bad arguments are RangeError', async (t) => {
  const f = await makeFs(t, { bs: 4096, mib: 16 })
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  await t.rejects(f.tree.mapOrAllocate(h, FILE_INO, inode, 2 ** 32 - 2, 2, 0), { code: 'EFBIG' }, 'the range ends past block 2^32 - 2')
  await t.rejects(f.tree.lookup(h, FILE_INO, inode, 2 ** 32), { code: 'EFBIG' }, 'lookup past the end')
  await t.rejects(f.tree.punch(h, FILE_INO, inode, -1, 1), RangeError, 'negative block')
  await t.rejects(f.tree.mapOrAllocate(h, FILE_INO, inode, 0.5, 1, 0), RangeError, 'fractional block')
  t.same(await f.tree.mapOrAllocate(h, FILE_INO, inode, 2 ** 32 - 2, 1, 0).then((r) => r.length), 1, 'the last block can be mapped')
  await f.tree.truncate(h, FILE_INO, inode, 0)
  t.equal(inode.blocks, 0, 'and freed')
  f.tm.end(h)
})

t.test('a block-mapped inode is ENOTSUP', async (t) => {
  const f = await makeFs(t, { bs: 4096, mib: 16 })
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  inode.flags &= ~INODE_FLAGS.EXTENTS
  await t.rejects(f.tree.mapOrAllocate(h, FILE_INO, inode, 0, 1, 0), { code: 'ENOTSUP' })
  await t.rejects(f.tree.lookup(h, FILE_INO, inode, 0), { code: 'ENOTSUP' })
  f.tm.end(h)
})

/** A depth-1 tree (5 extents), closed; returns the image path and its leaf's block. */
async function depthOne(t: Test): Promise<{ file: string; leaf: number; bs: number }> {
  const f = await makeFs(t, { bs: 4096, mib: 16 })
  await spaced(f, 5)
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  const leaf = decodeExtentIndex(inode.block, EXTENT_HEADER_SIZE).leaf
  f.tm.end(h)
  await closeFs(f)
  return { file: f.file, leaf, bs: f.bs }
}

function patch(file: string, offset: number, bytes: Buffer): void {
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, bytes, 0, bytes.length, offset)
  fs.closeSync(fd)
}

async function lookupWith(t: Test, file: string, checksums: boolean): Promise<unknown> {
  const f = await openFs(t, file)
  const tree = checksums ? f.tree : new ExtentTree({ blockSize: f.bs, blocksCount: 4096, csumSeed: undefined, hugeFile: true, allocator: f.alloc })
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  try {
    return await tree.lookup(h, FILE_INO, inode, 2)
  } finally {
    f.tm.end(h)
    await closeFs(f)
  }
}

t.test('a damaged tree block is EXT4_CORRUPT, naming the block', async (t) => {
  const a = await depthOne(t)
  t.match(await lookupWith(t, a.file, true), { extent: { block: 2, len: 1 } }, 'intact, the lookup works')
  patch(a.file, a.leaf * a.bs + EXTENT_HEADER_SIZE + 12, Buffer.from([0x7f]))
  await t.rejects(lookupWith(t, a.file, true), { code: 'EXT4_CORRUPT', message: new RegExp(`extent block ${a.leaf}: checksum`) }, 'a flipped entry fails the checksum')
  patch(a.file, a.leaf * a.bs, Buffer.from([0, 0]))
  await t.rejects(lookupWith(t, a.file, false), { code: 'EXT4_CORRUPT', message: /bad extent magic/ }, 'bad magic, checksums off')

  const b = await depthOne(t)
  patch(b.file, b.leaf * b.bs + 6, Buffer.from([1, 0]))
  await t.rejects(lookupWith(t, b.file, false), { code: 'EXT4_CORRUPT', message: /depth 1 under depth 1/ }, 'a child at the wrong depth')

  const c = await depthOne(t)
  const f = await openFs(t, c.file)
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  inode.block.writeUInt32LE(10 ** 9, EXTENT_HEADER_SIZE + 4)
  await t.rejects(f.tree.lookup(h, FILE_INO, inode, 2), { code: 'EXT4_CORRUPT', message: /outside the file system/ }, 'an index pointing past the end')
  inode.block.writeUInt16LE(0, 2)
  await t.rejects(f.tree.lookup(h, FILE_INO, inode, 2), { code: 'EXT4_CORRUPT', message: /has no entries/ }, 'an index root without entries')
  inode.block.writeUInt16LE(6, 6)
  await t.rejects(f.tree.lookup(h, FILE_INO, inode, 2), { code: 'EXT4_CORRUPT', message: /depth 6/ }, 'a root deeper than 5')
  f.tm.end(h)
})

t.test('an allocator answer outside what was asked is refused before it is used', async (t) => {
  const f = await makeFs(t, { bs: 4096, mib: 16 })
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  const lying = new ExtentTree({
    blockSize: f.bs, blocksCount: 4096, csumSeed: f.seed, hugeFile: true,
    allocator: {
      allocBlocks: () => Promise.resolve({ start: 100, count: 5 }),
      freeBlocks: f.alloc.freeBlocks.bind(f.alloc),
      allocInode: f.alloc.allocInode.bind(f.alloc),
      freeInode: f.alloc.freeInode.bind(f.alloc),
    },
  })
  await t.rejects(lying.mapOrAllocate(h, FILE_INO, inode, 0, 2, 0), { name: 'RangeError', message: /allocator returned 100\+5 for 2 blocks/ })
  t.equal(inode.block.readUInt16LE(2), 0, 'nothing inserted')
  f.tm.end(h)
})
