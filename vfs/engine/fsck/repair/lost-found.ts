/*
 * Creating /lost+found when pass 3 finds none, as e2fsck does before it
 * reconnects anything: a directory of one block owned by root, mode 0700,
 * named in the root. The inode and block are the first the check's maps show
 * free (an inode pass 1 scanned, in group 0); their bitmap bits, the group
 * counts and the root's link count are left to the pass 4 and 5 repairs that
 * follow (the next check finds them). Refused when the root is indexed.
 */
import { composeLeaf, setLeafCsum } from '../../dir/dir-block.ts'
import { dirFsOf } from '../../dir/dir-file.ts'
import { FT } from '../../format/dirent.ts'
import { encodeExtent, encodeExtentHeader, EXTENT_HEADER_SIZE, EXTENT_MAGIC } from '../../format/extent.ts'
import { S_IFDIR } from '../../format/inode.ts'
import { newInode } from '../../inode/new-inode.ts'
import { ROOT_INO } from '../../reader/image.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { DirInfo, FsckContext } from '../context.ts'
import { hasGroupCsum } from '../pass1-super.ts'
import { addEntry } from './dir-insert.ts'
import { inodePlace, writeNewInode } from './inode-write.ts'

function freeInode(ctx: FsckContext): number | undefined {
  const { sb } = ctx.img
  const gd = ctx.groups[0]
  if (gd === undefined) return undefined
  const scanned = hasGroupCsum(ctx) ? sb.inodesPerGroup - Math.min(gd.itableUnused, sb.inodesPerGroup) : sb.inodesPerGroup
  for (let ino = sb.firstIno; ino <= scanned; ino++) if (!ctx.inodes.get(ino)) return ino
  return undefined
}

function freeBlock(ctx: FsckContext): number | undefined {
  for (let b = ctx.img.sb.firstDataBlock; b < ctx.img.blocksCount; b++) if (!ctx.blocks.get(b)) return b
  return undefined
}

/** Make /lost+found; its inode number, or why not. */
export async function createLostFound(ctx: FsckContext, h: MetaTxn): Promise<number | string> {
  const root = ctx.dirs.get(ROOT_INO)
  if (root === undefined) return 'no root directory'
  const ino = freeInode(ctx)
  const block = freeBlock(ctx)
  if (ino === undefined || block === undefined) return 'no free inode or block'
  const bs = ctx.img.blockSize
  const inode = newInode({ mode: S_IFDIR | 0o700, uid: 0, gid: 0 }, ctx.img.inodeSize)
  encodeExtentHeader({ magic: EXTENT_MAGIC, entries: 1, max: 4, depth: 0, generation: 0 }).copy(inode.block)
  encodeExtent({ block: 0, len: 1, start: block, uninit: false }).copy(inode.block, EXTENT_HEADER_SIZE)
  inode.size = bs
  inode.blocks = bs / 512
  if (inodePlace(ctx, ino) === undefined) return `inode ${ino} cannot be placed`
  // The root's entry first: it is the one write that may be refused, and then nothing is written.
  const added = await addEntry(ctx, h, ROOT_INO, root, 'lost+found', ino, FT.DIR)
  if (added !== true) return added
  const fs = dirFsOf(ctx.img.sb)
  const buf = h.fresh(block)
  composeLeaf(buf, fs, [
    { inode: ino, fileType: FT.DIR, name: Buffer.from('.') },
    { inode: ROOT_INO, fileType: FT.DIR, name: Buffer.from('..') },
  ])
  setLeafCsum(buf, fs, ino, inode.generation)
  await writeNewInode(ctx, h, ino, inode)
  ctx.inodes.set(ino)
  ctx.blocks.set(block)
  ctx.types[ino] = S_IFDIR >> 12
  const info: DirInfo = { generation: inode.generation, flags: inode.flags, size: bs, extents: [[0, block, 1]], dotdot: ROOT_INO, parent: ROOT_INO }
  ctx.dirs.set(ino, info)
  ctx.lostFound = ino
  return ino
}
