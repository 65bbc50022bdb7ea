/*
 * A three-level tree: with 1 KiB blocks a node holds 84 entries. One-block extents (free space
 * fragmented: every other block) inserted from the end of the file towards its start always land
 * first in the first leaf, so every split is a split in halves and every insertion moves index
 * keys down; about 8,900 of them push the root to depth 3 (appending would need 28,225). Random
 * punches, a truncate and a refill then cut through it; our reader, e2fsck -fn and the kernel's
 * loop mount judge the result, and freeing everything gives the bitmaps back. Set EXTENT_SEED to
 * repeat a run.
 */
import t from 'tap'
import { FILE_INO, makeFs, readInode, rng, writeInode } from './extent-helpers.ts'
import { applyRuns, checkFsck, checkKernel, checkReader, depthOf, finish, forget, freeAll } from './extent-verify.ts'
import type { Model } from './extent-verify.ts'

const EXTENTS = 9500
const PER_TXN = 1000

t.test('depth-3 tree of one-block extents, punched and truncated: reader, e2fsck and kernel agree', async (t) => {
  const seed = Number(process.env.EXTENT_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (EXTENT_SEED=${seed} repeats this run)`)
  const rand = rng(seed)
  const int = (n: number): number => Math.floor(rand() * n)
  const fs = await makeFs(t, { bs: 1024, mib: 40 })
  const model: Model = new Map()
  let wrong = 0

  let h = await fs.tm.begin()
  await fs.alloc.initAll(h)
  const start = await fs.alloc.snapshot(h)
  const inode = await readInode(fs, h, FILE_INO)
  fs.tm.end(h)
  fs.alloc.fragment = true
  for (let l = EXTENTS - 1; l >= 0; ) {
    h = await fs.tm.begin()
    for (const stop = Math.max(-1, l - PER_TXN); l > stop; l--) wrong += await applyRuns(fs, model, await fs.tree.mapOrAllocate(h, FILE_INO, inode, l, 1, 0), l + 1)
    fs.tm.end(h)
  }
  fs.alloc.fragment = false
  t.equal(depthOf(inode.block), 3, `${EXTENTS} one-block extents make a depth-3 tree`)

  h = await fs.tm.begin()
  for (let i = 0; i < 40; i++) {
    const lblk = int(EXTENTS)
    const count = 1 + int(i % 4 === 0 ? 1000 : 60)
    await fs.tree.punch(h, FILE_INO, inode, lblk, count)
    forget(model, lblk, lblk + count)
  }
  const cut = EXTENTS - 500 - int(1000)
  await fs.tree.truncate(h, FILE_INO, inode, cut)
  forget(model, cut, Infinity)
  // Refill a punched stretch: inserts land in the middle of the deep tree, next to existing leaves.
  const refill = int(EXTENTS / 2)
  wrong += await applyRuns(fs, model, await fs.tree.mapOrAllocate(h, FILE_INO, inode, refill, 500, 0), 7)
  await writeInode(fs, h, FILE_INO, inode)
  const iBlocks = inode.blocks
  fs.tm.end(h)
  t.equal(wrong, 0, 'every run mapOrAllocate returned agrees with the model')
  t.comment(`${model.size} blocks mapped after punches, depth ${depthOf(inode.block)}`)
  await finish(fs, model)

  await checkReader(t, fs.file, fs.bs, model, Array.from({ length: 200 }, () => int(EXTENTS)))
  checkFsck(t, fs.file, 'after punching the deep tree')
  await checkKernel(t, fs.file, fs.bs, model, iBlocks)
  await freeAll(t, fs.file, start)
})
