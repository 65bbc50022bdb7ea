/*
 * mapInRoot, the directory read path's shortcut around the extent walk: wherever it answers, it
 * gives what ExtentTree.lookup gives (a written extent's block), over roots the real tree code
 * builds (written and unwritten extents, holes, up to four entries); it answers nothing for what
 * only the walk may judge (index roots, damaged roots), so damage is still reported by the walk.
 */
import t from 'tap'
import { mapInRoot } from '../../../vfs/engine/extent/root-map.ts'
import { EXTENT_HEADER_SIZE } from '../../../vfs/engine/format/extent.ts'
import { INODE_FLAGS } from '../../../vfs/engine/format/inode.ts'
import type { Inode } from '../../../vfs/engine/format/inode.ts'
import { FILE_INO, makeFs, readInode, rng } from './extent-helpers.ts'

const SPAN = 64

t.test('over roots the tree builds, mapInRoot agrees with the walk wherever it answers', async (t) => {
  const seed = Number(process.env.EXTENT_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (EXTENT_SEED=${seed} repeats this run)`)
  const rand = rng(seed)
  const fs = await makeFs(t, { bs: 4096, mib: 64 })
  const h = await fs.tm.begin()
  let compared = 0
  let answered = 0
  let wrong = 0
  let missed = 0
  let rounds = 0
  for (let round = 0; round < 80; round++) {
    const inode = await readInode(fs, h, FILE_INO)
    fs.tree.initRoot(inode)
    // Up to three runs with holes between, some unwritten: the root keeps them (depth 0) unless the
    // allocator splits a run into more than four extents in all (then the round is not counted).
    for (let lblk = Math.floor(rand() * 4), n = 0; n < 3 && lblk < SPAN; n++) {
      const len = 1 + Math.floor(rand() * 8)
      await fs.tree.mapOrAllocate(h, FILE_INO, inode, lblk, len, 0, { unwritten: rand() < 0.25 })
      lblk += len + 1 + Math.floor(rand() * 6)
    }
    if (inode.block.readUInt16LE(6) !== 0) continue
    rounds++
    for (let lblk = 0; lblk < SPAN + 4; lblk++) {
      const walk = await fs.tree.lookup(h, FILE_INO, inode, lblk)
      const want = walk.extent === undefined || walk.extent.uninit ? undefined : walk.extent.start + (lblk - walk.extent.block)
      const got = mapInRoot(inode, lblk)
      compared++
      if (got !== undefined) answered++
      if (got !== undefined && got !== want && wrong++ < 3) t.fail(`round ${round} lblk ${lblk}: mapInRoot ${got}, walk ${String(want)}`)
      if (got === undefined && want !== undefined && missed++ < 3) t.fail(`round ${round} lblk ${lblk}: mapInRoot gave nothing, walk ${want}`)
    }
  }
  fs.tm.end(h)
  t.equal(wrong, 0, `no block differs from the walk's (${compared} compared)`)
  t.equal(missed, 0, 'every written block of a depth-0 root is answered')
  t.ok(rounds >= 20 && answered > 200, `${rounds} depth-0 roots, ${answered} blocks answered`)
})

t.test('roots only the walk may judge get no answer', async (t) => {
  const fs = await makeFs(t, { bs: 4096, mib: 64 })
  const h = await fs.tm.begin()
  const inode = await readInode(fs, h, FILE_INO)
  fs.tree.initRoot(inode)
  await fs.tree.mapOrAllocate(h, FILE_INO, inode, 0, 4, 0)
  await fs.tree.mapOrAllocate(h, FILE_INO, inode, 10, 2, 0)
  await fs.tree.mapOrAllocate(h, FILE_INO, inode, 20, 2, 0, { unwritten: true })
  fs.tm.end(h)
  const good = mapInRoot(inode, 1)
  t.type(good, 'number', 'a sound root answers')
  const broken = (change: (b: Buffer, i: Inode) => void): number | undefined => {
    const copy: Inode = { ...inode, block: Buffer.from(inode.block) }
    change(copy.block, copy)
    return mapInRoot(copy, 1)
  }
  const at1 = EXTENT_HEADER_SIZE + 12
  t.equal(broken((b) => b.writeUInt16LE(0xf30b, 0)), undefined, 'bad magic')
  t.equal(broken((b) => b.writeUInt16LE(1, 6)), undefined, 'an index root (depth 1)')
  t.equal(broken((b) => b.writeUInt16LE(5, 2)), undefined, 'more entries than max')
  t.equal(broken((b) => b.writeUInt16LE(5, 4)), undefined, 'max past the root\'s room')
  t.equal(broken((b) => b.writeUInt32LE(2, at1)), undefined, 'the second extent overlaps the first')
  t.equal(broken((b) => b.writeUInt16LE(0, EXTENT_HEADER_SIZE + 4)), undefined, 'an empty extent')
  t.equal(broken((_b, i) => { i.flags &= ~INODE_FLAGS.EXTENTS }), undefined, 'not extent-mapped')
  t.equal(mapInRoot(inode, 5), undefined, 'a hole')
  t.equal(mapInRoot(inode, 21), undefined, 'an unwritten extent (the walk calls it a hole in a directory)')
  const walk = await fs.tree.lookup(fs.tm, FILE_INO, inode, 11)
  t.equal(mapInRoot(inode, 11), (walk.extent?.start ?? NaN) + 1, 'the second extent answers as the walk does')
})
