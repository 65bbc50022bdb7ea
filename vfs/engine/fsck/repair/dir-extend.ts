/*
 * A directory grown by one empty block from fsck, as e2fsck's
 * e2fsck_expand_directory when lost+found has no room ("No room in
 * lost+found directory. Expand? yes"): the first block the check's map shows
 * free after the directory's last one (else the first free at all), mapped
 * at the next logical block in the inode's own extent root (the last extent
 * lengthened when the block follows it, else one more extent), i_size and
 * i_blocks raised by a block, and the block written as an empty leaf. Its
 * bitmap bit and the group counts are the pass 5 repair's after the next
 * check. Refused when the extent tree has index levels or the root is full:
 * growing a tree is the engine's extent code's business, not fsck's.
 */
import { composeLeaf, setLeafCsum } from '../../dir/dir-block.ts'
import { dirFsOf } from '../../dir/dir-file.ts'
import { decodeExtentNode, encodeExtent, encodeExtentHeader, EXT_INIT_MAX_LEN, EXTENT_ENTRY_SIZE, EXTENT_HEADER_SIZE } from '../../format/extent.ts'
import { I_BLOCK_SIZE, INODE_FLAGS } from '../../format/inode.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { DirInfo, FsckContext } from '../context.ts'
import { errText } from '../problems.ts'
import { updateInode } from './inode-write.ts'

/** The first block free in the check's map from `from` on, wrapping to the start. */
function freeBlockFrom(ctx: FsckContext, from: number): number | undefined {
  const first = ctx.img.sb.firstDataBlock
  const end = ctx.img.blocksCount
  const start = Math.min(Math.max(from, first), end)
  for (let b = start; b < end; b++) if (!ctx.blocks.get(b)) return b
  for (let b = first; b < start; b++) if (!ctx.blocks.get(b)) return b
  return undefined
}

/** Add one empty block to directory ino (linear, depth-0 extent root); the new physical block, or why not. */
export async function extendDir(ctx: FsckContext, h: MetaTxn, ino: number, dir: DirInfo): Promise<number | string> {
  if ((dir.flags & INODE_FLAGS.INDEX) !== 0) return `directory ${ino} is indexed (htree)`
  const bs = ctx.img.blockSize
  const logical = Math.floor(dir.size / bs)
  if (dir.size % bs !== 0) return `directory ${ino}: i_size ${dir.size} is not whole blocks`
  const last = dir.extents.reduce<[number, number, number] | undefined>((a, e) => (a === undefined || e[0] > a[0] ? e : a), undefined)
  const block = freeBlockFrom(ctx, last === undefined ? 0 : last[1] + last[2])
  if (block === undefined) return 'no free block'
  let why: string | undefined
  const ok = await updateInode(ctx, h, ino, (inode) => {
    if ((inode.flags & INODE_FLAGS.EXTENTS) === 0) {
      why = `directory ${ino} is block-mapped`
      return
    }
    let node
    try {
      node = decodeExtentNode(inode.block, I_BLOCK_SIZE, `directory ${ino} extent root`)
    } catch (err) {
      why = errText(err)
      return
    }
    if (node.header.depth !== 0) {
      why = `directory ${ino}'s extent tree has index levels`
      return
    }
    const tail = node.extents[node.extents.length - 1]
    if (tail !== undefined && !tail.uninit && tail.block + tail.len === logical && tail.start + tail.len === block && tail.len < EXT_INIT_MAX_LEN) {
      tail.len++
      encodeExtent(tail).copy(inode.block, EXTENT_HEADER_SIZE + (node.extents.length - 1) * EXTENT_ENTRY_SIZE)
    } else if (node.header.entries < node.header.max) {
      encodeExtent({ block: logical, len: 1, start: block, uninit: false }).copy(inode.block, EXTENT_HEADER_SIZE + node.extents.length * EXTENT_ENTRY_SIZE)
      encodeExtentHeader({ ...node.header, entries: node.header.entries + 1 }).copy(inode.block, 0)
    } else {
      why = `directory ${ino}'s extent root is full`
      return
    }
    inode.size += bs
    // With HUGE_FILE_FL i_blocks counts file system blocks.
    inode.blocks += (inode.flags & INODE_FLAGS.HUGE_FILE) !== 0 ? 1 : bs / 512
  })
  if (!ok) return `directory ${ino}: the inode table is outside the file system`
  // The callback refused before changing anything, but updateInode marked the record dirty: it is written back as it was.
  if (why !== undefined) return why
  const fs = dirFsOf(ctx.img.sb)
  const buf = h.fresh(block)
  composeLeaf(buf, fs, [])
  setLeafCsum(buf, fs, ino, dir.generation)
  ctx.blocks.set(block)
  dir.extents.push([logical, block, 1])
  dir.size += bs
  return block
}
