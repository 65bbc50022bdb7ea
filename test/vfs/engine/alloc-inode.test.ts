/*
 * The inode table: rewriting every inode mkfs.ext4 -d wrote (files, a directory tree, fast and
 * slow symlinks, the journal and resize inodes)  without changes gives back the table byte for
 * byte, checksums included; bytes no field covers survive a write; a damaged inode is refused
 * with its checksum named; new inodes carry what __ext4_new_inode gives them; directories spread.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { chooseGroup } from '../../../vfs/engine/alloc/orlov.ts'
import type { GroupSummary } from '../../../vfs/engine/alloc/group-table.ts'
import { decodeExtentHeader, EXTENT_MAGIC } from '../../../vfs/engine/format/extent.ts'
import { INODE_FLAGS, S_IFDIR, S_IFLNK, S_IFREG } from '../../../vfs/engine/format/inode.ts'
import { InodeTable } from '../../../vfs/engine/inode/inode-table.ts'
import { newInode, NEW_EXTRA_ISIZE } from '../../../vfs/engine/inode/new-inode.ts'
import { LAYOUTS, fsck, makeImage, openAlloc } from './alloc-helpers.ts'
import { scratch } from './format-helpers.ts'

for (const layout of LAYOUTS) {
  t.test(`rewriting mkfs's inodes unchanged gives back the table byte for byte (${layout.name})`, async (t) => {
    const src = scratch(t, 'alloc-src')
    fs.mkdirSync(path.join(src, 'a/b/c'), { recursive: true })
    fs.writeFileSync(path.join(src, 'a/b/c/file'), Buffer.alloc(70_000, 7))
    fs.writeFileSync(path.join(src, 'small'), 'x')
    fs.symlinkSync('a/b/c/file', path.join(src, 'fast'))
    fs.symlinkSync('x'.repeat(200), path.join(src, 'slow'))
    const file = makeImage(t, layout, ['-d', src])
    const o = await openAlloc(file, layout.blockSize)
    t.teardown(o.close)
    const geo = o.alloc.geometry
    const table = new InodeTable(o.txm, o.alloc.groups, { cacheSize: 4 })
    const blocks = o.alloc.groups.groups.flatMap((g) => Array.from({ length: geo.itableBlocks }, (_, i) => g.inodeTable + i))
    const before = await Promise.all(blocks.map(async (b) => Buffer.from(await o.txm.read(b))))
    const h = await o.txm.begin()
    let live = 0
    for (let ino = 1; ino <= geo.inodesCount; ino++) {
      const inode = await table.get(ino, h)
      if (inode.mode === 0 && inode.linksCount === 0) continue
      live++
      await table.put(h, ino, inode)
    }
    o.txm.end(h)
    t.ok(live >= 11, `${live} inodes rewritten`)
    const after = await Promise.all(blocks.map((b) => o.txm.read(b)))
    t.ok(after.every((b, i) => b.equals(before[i] ?? Buffer.alloc(0))), 'inode table blocks unchanged')
    await o.close()
    t.equal(fsck(file).status, 0, 'e2fsck -fn clean')
  })
}

t.test('bytes beyond the fields survive, a damaged inode is refused, new inodes are as the kernel makes them', async (t) => {
  const layout = LAYOUTS[0] ?? { name: '4k', size: 64 << 20, blockSize: 4096, args: [] }
  const file = makeImage(t, layout)
  let o = await openAlloc(file, layout.blockSize)
  const geo = o.alloc.geometry
  let table = new InodeTable(o.txm, o.alloc.groups)
  const h = await o.txm.begin()
  const ino = await o.alloc.allocInode(h, 2, false)
  const now = { sec: 2 ** 32 + 12345, nsec: 987_654_321 }
  const reg = newInode({ mode: S_IFREG | 0o640, uid: 70000, gid: 80000, now }, geo.inodeSize)
  t.equal(reg.extraIsize, NEW_EXTRA_ISIZE, 'i_extra_isize 32')
  t.equal(reg.flags, INODE_FLAGS.EXTENTS, 'EXTENTS_FL')
  t.strictSame(decodeExtentHeader(reg.block), { magic: EXTENT_MAGIC, entries: 0, max: 4, depth: 0, generation: 0 }, 'an empty extent root')
  t.equal(reg.linksCount, 1, 'one link')
  await table.put(h, ino, reg, true)
  // Something in the in-inode xattr space, after i_extra_isize: a write must keep it.
  const { block, offset } = table.locate(ino)
  const buf = await h.get(block)
  buf.fill(0xab, offset + 128 + NEW_EXTRA_ISIZE, offset + geo.inodeSize)
  await table.put(h, ino, { ...reg, size: 5 })
  t.ok(buf.subarray(offset + 128 + NEW_EXTRA_ISIZE, offset + geo.inodeSize).every((x) => x === 0xab), 'bytes after i_extra_isize kept')
  o.txm.end(h)
  await o.close()

  o = await openAlloc(file, layout.blockSize)
  t.teardown(() => o.close())
  table = new InodeTable(o.txm, o.alloc.groups)
  const back = await table.get(ino)
  t.strictSame({ atime: back.atime, crtime: back.crtime, uid: back.uid, gid: back.gid, size: back.size, generation: back.generation }, { atime: now, crtime: now, uid: 70000, gid: 80000, size: 5, generation: reg.generation }, 'times past 2038 to the nanosecond, 32-bit owners, generation')
  back.size = 99
  t.equal((await table.get(ino)).size, 5, 'a caller changing its copy does not change the cache')

  const dir = newInode({ mode: S_IFDIR | 0o755, uid: 0, gid: 0 }, geo.inodeSize)
  t.equal(dir.linksCount, 2, 'a directory starts with two links')
  const fast = newInode({ mode: S_IFLNK | 0o777, uid: 0, gid: 0, symlink: Buffer.from('target') }, geo.inodeSize)
  t.strictSame([fast.flags, fast.size, fast.block.subarray(0, 7).toString('latin1')], [0, 6, 'target\0'], 'a fast symlink: inline, no EXTENTS_FL')
  const slow = newInode({ mode: S_IFLNK | 0o777, uid: 0, gid: 0, symlink: Buffer.alloc(60, 0x61) }, geo.inodeSize)
  t.strictSame([slow.flags, slow.size], [INODE_FLAGS.EXTENTS, 60], 'a 60-byte target is a slow symlink')
  const gens = new Set(Array.from({ length: 64 }, () => newInode({ mode: S_IFREG, uid: 0, gid: 0 }, geo.inodeSize).generation))
  t.ok(gens.size > 60, 'generations are random')
  await o.close()

  // Flip a bit of the uid: the checksum catches it.
  const at = o.alloc.groups.group(0).inodeTable * layout.blockSize + (ino - 1) * geo.inodeSize + 2
  const fd = fs.openSync(file, 'r+')
  const byte = Buffer.alloc(1)
  fs.readSync(fd, byte, 0, 1, at)
  t.equal(byte[0], 70000 & 0xff, 'the low byte of the uid on disk')
  byte[0] = (byte[0] ?? 0) ^ 0x01
  fs.writeSync(fd, byte, 0, 1, at)
  fs.closeSync(fd)
  o = await openAlloc(file, layout.blockSize)
  await t.rejects(new InodeTable(o.txm, o.alloc.groups).get(ino), { code: 'EXT4_BAD_CHECKSUM', message: new RegExp(`inode ${ino} in block`) })
  await t.rejects(new InodeTable(o.txm, o.alloc.groups).get(geo.inodesCount + 1), { code: 'EXT4_CORRUPT' }, 'an inode number past the last')
})

t.test('directories under the root spread, files stay with their parent', async (t) => {
  const groups: GroupSummary[] = Array.from({ length: 8 }, (_, g) => ({ blockBitmap: 0, inodeBitmap: 0, inodeTable: 0, freeBlocks: 1000, freeInodes: 100, usedDirs: g === 0 ? 3 : 0, flags: 0, blockBitmapCsum: 0, inodeBitmapCsum: 0, itableUnused: 0 }))
  let r = 0
  const c = { groups, freeInodes: 800, freeBlocks: 8000, usedDirs: 3, inodesPerGroup: 128, blocksPerGroup: 1024, usable: (g: number) => groups[g]?.freeBlocks ?? 0, random: () => (r++ % 8) / 8 }
  const picked: number[] = []
  for (let i = 0; i < 7; i++) {
    const g = chooseGroup(c, 0, true, true)
    if (g === undefined) throw new Error('no group')
    picked.push(g)
    const s = groups[g]
    if (s !== undefined) s.usedDirs++
    c.usedDirs++
  }
  t.equal(new Set(picked).size, 7, `seven top-level directories in seven groups (${picked.join(',')})`)
  t.notOk(picked.includes(0), 'not in the group already holding directories')
  t.equal(chooseGroup(c, 5, false, false), 5, 'a file goes to its parent group')
  t.equal(chooseGroup(c, 5, true, false), 5, 'a deeper directory stays near its parent')
  const full = groups[5]
  if (full !== undefined) full.freeInodes = 0
  t.equal(chooseGroup(c, 5, false, false), 6, 'a file whose parent group is full goes to the next probe')
  for (const s of groups) s.freeInodes = 0
  t.equal(chooseGroup(c, 5, false, false), undefined, 'no free inode anywhere')
})
