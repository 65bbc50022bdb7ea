/*
 * The tree's edge cases, each judged by e2fsck -fn and our reader: a punch inside one extent of a
 * full leaf (the leaf splits), the tree moving back into i_block when it fits again, merging of
 * neighbours up to the length limits (32768 initialized, 32767 unwritten), and unwritten extents
 * never merging with initialized ones, and unwritten extents turning written (markWritten).
 */
import t from 'tap'
import { INODE_FLAGS } from '../../../vfs/engine/format/inode.ts'
import type { Inode } from '../../../vfs/engine/format/inode.ts'
import { addBlocks } from '../../../vfs/engine/extent/i-blocks.ts'
import { blockData, closeFs, FILE_INO, makeFs, openFs, readInode, writeInode } from './extent-helpers.ts'
import { applyRuns, checkFsck, checkReader, depthOf, finish, forget } from './extent-verify.ts'
import type { Model } from './extent-verify.ts'

const SPACED = 400

t.test('a punch inside an extent of a full leaf splits the leaf; the tree collapses into i_block when it fits', async (t) => {
  const fs = await makeFs(t, { bs: 4096, mib: 64 })
  const model: Model = new Map()
  const h = await fs.tm.begin()
  const inode = await readInode(fs, h, FILE_INO)
  let wrong = 0
  // 3-block extents with one-block holes between them never merge: 400 entries, the first leaf full (340).
  for (let k = 0; k < SPACED; k++) wrong += await applyRuns(fs, model, await fs.tree.mapOrAllocate(h, FILE_INO, inode, 4 * k, 3, 0), k)
  t.equal(wrong, 0, 'runs agree with the model')
  t.equal(depthOf(inode.block), 1, 'depth 1')
  t.equal(inode.block.readUInt16LE(2), 2, 'two leaves: the append split left the first one full')

  await fs.tree.punch(h, FILE_INO, inode, 4 * 10 + 1, 1)
  forget(model, 41, 42)
  t.equal(inode.block.readUInt16LE(2), 3, 'the full leaf split to take the tail of the punched extent')
  const hole = await fs.tree.lookup(h, FILE_INO, inode, 41)
  t.same(hole, { holeEnd: 42 }, 'the punched block is a hole up to the tail')
  const tail = await fs.tree.lookup(h, FILE_INO, inode, 42)
  t.match(tail.extent, { block: 42, len: 1, start: (model.get(42)?.phys ?? -1), uninit: false }, 'the tail keeps its physical block')
  t.equal(inode.blocks, (SPACED * 3 - 1 + 3) * 8, 'i_blocks: data blocks and three leaves, in sectors')
  await writeInode(fs, h, FILE_INO, inode)
  fs.tm.end(h)
  await finish(fs, model)
  await checkReader(t, fs.file, fs.bs, model, [41, 3, 7, 1599])
  checkFsck(t, fs.file, 'after splitting a full leaf by a punch')

  // Punch all but three extents: they fit in the root again.
  const fs2 = await openFs(t, fs.file)
  const h2 = await fs2.tm.begin()
  const inode2 = await readInode(fs2, h2, FILE_INO)
  await fs2.tree.punch(h2, FILE_INO, inode2, 4 * 3, 4 * SPACED)
  forget(model, 12, Infinity)
  t.equal(depthOf(inode2.block), 0, 'the tree moved back into i_block')
  t.equal(inode2.block.readUInt16LE(2), 3, 'three extents in the root')
  t.equal(inode2.blocks, 9 * 8, 'i_blocks counts only the 9 data blocks')
  await writeInode(fs2, h2, FILE_INO, inode2)
  fs2.tm.end(h2)
  await finish(fs2, model)
  await checkReader(t, fs.file, fs.bs, model, [12, 100, 1599])
  checkFsck(t, fs.file, 'after collapsing the tree')
})

t.test('extents merge up to 32768 initialized and 32767 unwritten blocks, never across the two kinds', async (t) => {
  // 4 KiB blocks, 1 GiB: some group has no superblock backup and no journal, so 32768 contiguous free blocks exist.
  const fs = await makeFs(t, { bs: 4096, mib: 1024 })
  const h = await fs.tm.begin()
  await fs.alloc.initAll(h)
  const inode = await readInode(fs, h, FILE_INO)
  const empty = (await fs.alloc.snapshot(h)).findIndex((g) => g.free === fs.sb.blocksPerGroup)
  t.ok(empty > 0, `group ${empty} is entirely free`)
  const group2 = empty * fs.sb.blocksPerGroup
  const runs = await fs.tree.mapOrAllocate(h, FILE_INO, inode, 0, 40000, group2, { unwritten: true })
  t.match(runs[0], { lblk: 0, start: group2, count: 32767, fresh: true, uninit: true }, 'an unwritten extent stops at 32767 blocks')
  t.match(await fs.tree.lookup(h, FILE_INO, inode, 0), { extent: { block: 0, len: 32767, uninit: true } }, 'lookup sees it unwritten')
  await fs.tree.truncate(h, FILE_INO, inode, 0)
  t.equal(inode.blocks, 0, 'truncate frees unwritten blocks too')
  fs.tm.end(h)
  await fs.tm.waitDurable(h.tid)

  const h2 = await fs.tm.begin()
  const half = await fs.tree.mapOrAllocate(h2, FILE_INO, inode, 0, 20000, group2)
  const rest = await fs.tree.mapOrAllocate(h2, FILE_INO, inode, 20000, 20000, 0)
  t.match(half[0], { start: group2, count: 20000 }, 'the first call allocates at the goal')
  t.match(rest[0], { start: group2 + 20000, count: 12768 }, 'the second continues physically, up to the limit')
  t.match(await fs.tree.lookup(h2, FILE_INO, inode, 0), { extent: { block: 0, len: 32768, start: group2, uninit: false } }, 'merged into one extent of 32768')
  t.match(await fs.tree.lookup(h2, FILE_INO, inode, 32768), { extent: { block: 32768, uninit: false } }, 'the rest starts a new extent')
  const un = await fs.tree.mapOrAllocate(h2, FILE_INO, inode, 40000, 10, 0, { unwritten: true })
  t.equal(un.length, 1, 'one unwritten run')
  t.match(await fs.tree.lookup(h2, FILE_INO, inode, 40000), { extent: { block: 40000, len: 10, uninit: true } }, 'not merged into the initialized neighbour')
  inode.size = 40010 * fs.bs
  await writeInode(fs, h2, FILE_INO, inode)
  fs.tm.end(h2)
  await closeFs(fs)
  checkFsck(t, fs.file, 'with maximal extents')
})

t.test('i_blocks follows the kernel: 32 bits without huge_file, 48 with it, then HUGE_FILE_FL and block units', async (t) => {
  const inode = { blocks: 0, flags: INODE_FLAGS.EXTENTS } as Inode
  addBlocks(inode, 4096, false, 2 ** 29 - 1)
  t.equal(inode.blocks, (2 ** 29 - 1) * 8, 'in sectors')
  t.throws(() => {
    addBlocks(inode, 4096, false, 1)
  }, { code: 'EFBIG' }, 'past 2^32 - 1 sectors without huge_file: EFBIG')
  t.equal(inode.blocks, (2 ** 29 - 1) * 8, 'unchanged by the refusal')
  addBlocks(inode, 4096, true, 2 ** 44)
  t.equal(inode.blocks, (2 ** 29 - 1 + 2 ** 44) * 8, '48 bits of sectors with huge_file')
  t.equal(inode.flags & INODE_FLAGS.HUGE_FILE, 0, 'no HUGE_FILE_FL yet')
  addBlocks(inode, 4096, true, 2 ** 45)
  t.equal(inode.flags & INODE_FLAGS.HUGE_FILE, INODE_FLAGS.HUGE_FILE, 'HUGE_FILE_FL past 2^48 - 1 sectors')
  t.equal(inode.blocks, 2 ** 29 - 1 + 2 ** 44 + 2 ** 45, 'counted in file-system blocks')
  addBlocks(inode, 4096, true, -(2 ** 44 + 2 ** 45))
  t.equal(inode.flags & INODE_FLAGS.HUGE_FILE, 0, 'flag cleared when it fits again')
  t.equal(inode.blocks, (2 ** 29 - 1) * 8, 'back in sectors')
  t.throws(() => {
    addBlocks(inode, 4096, true, -(2 ** 29))
  }, RangeError, 'never negative')
})

t.test('a new extent joins the one before, the one after (moving an index key down), or bridges both', async (t) => {
  const f = await makeFs(t, { bs: 4096, mib: 64 })
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  const G = 10000
  await f.tree.mapOrAllocate(h, FILE_INO, inode, 1000, 10, G + 100)
  for (let k = 2; k < 7; k++) await f.tree.mapOrAllocate(h, FILE_INO, inode, 1000 * k, 1, G + 1000 * k)
  t.equal(depthOf(inode.block), 1, 'depth 1, the extent at 1000 first in the first leaf')
  await f.tree.mapOrAllocate(h, FILE_INO, inode, 990, 10, G + 90)
  t.match(await f.tree.lookup(h, FILE_INO, inode, 990), { extent: { block: 990, len: 20, start: G + 90 } }, 'joined the extent after it')
  t.equal(inode.block.readUInt32LE(12), 990, "the root's first index key moved down with it")
  await f.tree.mapOrAllocate(h, FILE_INO, inode, 1020, 10, G + 120)
  await f.tree.mapOrAllocate(h, FILE_INO, inode, 1010, 10, 0)
  t.match(await f.tree.lookup(h, FILE_INO, inode, 1010), { extent: { block: 990, len: 40, start: G + 90 } }, 'bridged both neighbours into one extent')
  t.match(await f.tree.lookup(f.tm, FILE_INO, inode, 5000), { extent: { block: 5000, len: 1 } }, 'lookup through the manager, read-only')
  inode.size = 7000 * f.bs
  await writeInode(f, h, FILE_INO, inode)
  f.tm.end(h)
  await closeFs(f)
  checkFsck(t, f.file, 'after merges that move an index key')
})

t.test('initRoot makes an empty extent tree', async (t) => {
  const f = await makeFs(t, { bs: 1024, mib: 16 })
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  inode.flags = 0
  inode.block.fill(0xff)
  f.tree.initRoot(inode)
  t.equal(inode.flags & INODE_FLAGS.EXTENTS, INODE_FLAGS.EXTENTS, 'EXTENTS_FL set')
  t.same([...inode.block.subarray(0, 12)], [0x0a, 0xf3, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0], 'magic, no entries, max 4, depth 0')
  t.ok(inode.block.subarray(12).every((b) => b === 0), 'the rest zeroed')
  t.same(await f.tree.lookup(h, FILE_INO, inode, 7), { holeEnd: Infinity }, 'all hole')
  f.tm.end(h)
})

t.test('markWritten cuts unwritten extents at the range ends and flips what is inside', async (t) => {
  const f = await makeFs(t, { bs: 4096, mib: 64 })
  const model: Model = new Map()
  const h = await f.tm.begin()
  const inode = await readInode(f, h, FILE_INO)
  let wrong = await applyRuns(f, model, await f.tree.mapOrAllocate(h, FILE_INO, inode, 0, 100, 0, { unwritten: true }), 1)
  wrong += await applyRuns(f, model, await f.tree.mapOrAllocate(h, FILE_INO, inode, 200, 10, 0), 2)
  // Write [10, 30) and [50, 100) as a write path would: data first, then the extents say so.
  const write = async (from: number, to: number, tag: number): Promise<void> => {
    for (const r of await f.tree.mapOrAllocate(h, FILE_INO, inode, from, to - from, 0)) {
      const data = Array.from({ length: r.count }, (_, i) => blockData(f.bs, r.lblk + i, tag))
      await f.dev.write(r.start * f.bs, Buffer.concat(data))
      for (let i = 0; i < r.count; i++) model.set(r.lblk + i, { phys: r.start + i, tag })
    }
    await f.tree.markWritten(h, FILE_INO, inode, from, to - from)
  }
  await write(10, 30, 3)
  t.match(await f.tree.lookup(h, FILE_INO, inode, 5), { extent: { block: 0, len: 10, uninit: true } }, 'the head stays unwritten')
  t.match(await f.tree.lookup(h, FILE_INO, inode, 10), { extent: { block: 10, len: 20, uninit: false } }, 'the written part is its own extent')
  t.match(await f.tree.lookup(h, FILE_INO, inode, 30), { extent: { block: 30, len: 70, uninit: true } }, 'the tail stays unwritten')
  await write(50, 205, 4)
  t.match(await f.tree.lookup(h, FILE_INO, inode, 50), { extent: { block: 50, len: 50, uninit: false } }, 'the end of the unwritten extent flipped')
  t.match(await f.tree.lookup(h, FILE_INO, inode, 150), { extent: { block: 100, len: 110, uninit: false } }, 'the hole in the range was allocated, written, and joined the written extent after it')
  await f.tree.markWritten(h, FILE_INO, inode, 0, 0)
  t.equal(wrong, 0, 'runs agree with the model')
  await writeInode(f, h, FILE_INO, inode)
  f.tm.end(h)
  await finish(f, model)
  await checkReader(t, f.file, f.bs, model, [])
  checkFsck(t, f.file, 'after converting unwritten extents')
})
