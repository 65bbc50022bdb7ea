/*
 * Pass 1, the extended attributes kept in the inode itself, after
 * i_extra_isize (ext4 attributes.rst: a 4-byte magic, then entries as in a
 * block, value offsets counted from the first entry). The rules of e2fsck's
 * check_ea_in_inode: each entry and value inside the space and overlapping
 * nothing, a name that fits, e_hash (0 allowed: old kernels wrote none) the
 * hash of name and value, and an entry naming a value inode judged with that
 * inode (ea-inode.ts). Any fault is "Clear? yes" for every attribute in the
 * inode (e2fsck zeroes the magic; repair/ea-inode.ts does the same).
 */
import { GOOD_OLD_INODE_SIZE } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import type { FsckContext } from './context.ts'
import { hasEaInodeFeature, judgeEaRef, reportNoFlag } from './ea-inode.ts'
import { entryHash, entryLen, XATTR_ENTRY_SIZE, XATTR_MAGIC } from './xattr-entries.ts'

/** Where an inode's in-body attributes start (the magic), or undefined when it has no room for them. */
export function ibodyStart(isz: number, extraIsize: number): number | undefined {
  const at = GOOD_OLD_INODE_SIZE + extraIsize
  return isz > GOOD_OLD_INODE_SIZE && at + 4 < isz ? at : undefined
}

/** Why the entries after the magic at header cannot stand (undefined: they can); the offsets of those naming a value inode. */
function walk(raw: Buffer, header: number, eaInode: boolean): { fault: string | undefined; refs: number[] } {
  const end = raw.length
  const start = header + 4
  const taken: Array<[number, number]> = [[header, 4]]
  const take = (at: number, len: number): boolean => {
    if (at + len > end || taken.some(([a, n]) => at < a + n && a < at + len)) return false
    taken.push([at, len])
    return true
  }
  const refs: number[] = []
  let remain = end - start
  let off = start
  while (remain >= XATTR_ENTRY_SIZE && raw.readUInt32LE(off) !== 0) {
    const nameLen = raw.readUInt8(off)
    if (!take(off, entryLen(nameLen))) return { fault: `entry at ${off - start} overlaps another part`, refs }
    remain -= XATTR_ENTRY_SIZE
    const nameSpace = (nameLen + 3) & ~3
    if (nameSpace > remain) return { fault: `entry at ${off - start}: name of ${nameLen} bytes runs past the inode`, refs }
    remain -= nameSpace
    const valueOffs = raw.readUInt16LE(off + 2)
    const inum = raw.readUInt32LE(off + 4)
    const size = raw.readUInt32LE(off + 8)
    if (inum === 0) {
      if (size > remain) return { fault: `entry at ${off - start}: value of ${size} bytes does not fit`, refs }
      if (size !== 0 && !take(start + valueOffs, (size + 3) & ~3)) return { fault: `entry at ${off - start}: value at ${valueOffs} overlaps another part`, refs }
      if (start + valueOffs + size > end) return { fault: `entry at ${off - start}: value ${valueOffs}+${size} outside the inode`, refs }
      const hash = raw.readUInt32LE(off + 12)
      const v = start + valueOffs
      if (hash !== 0 && hash !== entryHash(raw, off, nameLen, v, size, false) && hash !== entryHash(raw, off, nameLen, v, size, true)) {
        return { fault: `entry at ${off - start}: e_hash 0x${hash.toString(16)} is not the hash of its name and value`, refs }
      }
      remain -= size
    } else {
      if (!eaInode) return { fault: `entry at ${off - start} keeps its value in inode ${inum} without the ea_inode feature`, refs }
      refs.push(off)
    }
    off += entryLen(nameLen)
  }
  if (off + 4 > end || !take(off, 4)) return { fault: `no end of entries at ${off - start}`, refs }
  return { fault: undefined, refs }
}

/**
 * Judge inode ino's in-body attributes (raw: its record). The blocks their value inodes charge to
 * it, or undefined when they cannot stand (then its i_blocks is left to the check after the repair).
 */
export async function checkIbodyXattrs(ctx: FsckContext, ino: number, inode: Inode, raw: Buffer): Promise<number | undefined> {
  const header = ibodyStart(raw.length, inode.extraIsize)
  if (header === undefined || raw.readUInt32LE(header) !== XATTR_MAGIC) return 0
  const { fault, refs } = walk(raw, header, hasEaInodeFeature(ctx))
  let quota = 0
  let why = fault
  for (const off of refs) {
    const ref = { off, inum: raw.readUInt32LE(off + 4), size: raw.readUInt32LE(off + 8), hash: raw.readUInt32LE(off + 12) }
    const v = await judgeEaRef(ctx, { ino, generation: inode.generation }, raw, ref)
    if (v.fault !== undefined) why ??= `entry at ${off - header - 4} ${v.fault}`
    else if (v.noFlag) reportNoFlag(ctx, ino, ref.inum)
    quota += v.quota
  }
  if (why === undefined) return quota
  ctx.report.add(1, 'XATTR_IBODY_BAD', `inode ${ino}: extended attributes in the inode: ${why}`, { ino })
  return undefined
}
