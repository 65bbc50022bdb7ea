/*
 * The commonest mapping, found without the tree walk: a directory or small file whose extents all
 * fit in i_block (depth 0, at most four). A directory lookup maps two or three blocks; the walk
 * (ExtentTree.lookup under the inode's turn) costs a promise chain and a decoded root per block,
 * which this reads in place. Anything unusual — another magic, an index root, entries out of
 * order, a hole, an unwritten extent — answers undefined, and the caller takes the full walk,
 * which judges it (and reports damage) as before.
 */
import { EXT_INIT_MAX_LEN, EXTENT_ENTRY_SIZE, EXTENT_HEADER_SIZE, EXTENT_MAGIC } from '../format/extent.ts'
import { INODE_FLAGS } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import { ROOT_MAX } from './node.ts'

/** The physical block of logical block lblk when a written extent in the inode's root holds it; else undefined. */
export function mapInRoot(inode: Readonly<Inode>, lblk: number): number | undefined {
  const b = inode.block
  if ((inode.flags & INODE_FLAGS.EXTENTS) === 0 || b.length < EXTENT_HEADER_SIZE + ROOT_MAX * EXTENT_ENTRY_SIZE) return undefined
  if (b.readUInt16LE(0) !== EXTENT_MAGIC || b.readUInt16LE(6) !== 0) return undefined
  const entries = b.readUInt16LE(2)
  const max = b.readUInt16LE(4)
  if (entries > max || max > ROOT_MAX) return undefined
  let prevEnd = 0
  let found: number | undefined
  for (let i = 0, off = EXTENT_HEADER_SIZE; i < entries; i++, off += EXTENT_ENTRY_SIZE) {
    const first = b.readUInt32LE(off)
    const raw = b.readUInt16LE(off + 4)
    const len = raw > EXT_INIT_MAX_LEN ? raw - EXT_INIT_MAX_LEN : raw
    // What decodeExtentNode refuses (empty, overlapping, past 2^32) is the walk's to report.
    if (len === 0 || first < prevEnd || first + len > 2 ** 32) return undefined
    prevEnd = first + len
    if (lblk >= first && lblk < first + len) found = raw > EXT_INIT_MAX_LEN ? undefined : b.readUInt32LE(off + 8) + b.readUInt16LE(off + 6) * 2 ** 32 + (lblk - first)
  }
  return found
}
