/*
 * Pass 1 repair of an inode's deletion time, as e2fsck -fy: a free inode
 * whose i_dtime is 0 ("Deleted inode has zero dtime. Fix? yes") gets the
 * current time; an inode in use (not an orphan) whose i_dtime is set ("Inode
 * is in use, but has dtime set. Fix? yes"; the root's "Root inode has dtime
 * set") gets 0; a reserved inode whose i_dtime looks like an orphan-list link
 * ("Inode was part of the orphaned inode list. FIXED.") 0 while it has links,
 * else the current time. Left when the inode's
 * checksum also fails: rewriting the record would bless whatever changed it.
 */
import { hasFeature } from '../../format/features.ts'
import { INODE_FLAGS } from '../../format/inode.ts'
import { updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

export async function repairDtimes({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const badSum = new Set(problems.filter((p) => p.code === 'INODE_CSUM').map((p) => p.ino))
  const now = Math.floor(Date.now() / 1000)
  for (const p of problems) {
    if ((p.code !== 'INODE_ZERO_DTIME' && p.code !== 'INODE_DTIME_SET' && p.code !== 'INODE_LOW_DTIME') || p.ino === undefined) continue
    const ino = p.ino
    if (badSum.has(ino)) {
      out.push(left(1, p.code, `${p.message} (not repaired: the inode's checksum fails too)`, { ino }))
      continue
    }
    let dtime = p.code === 'INODE_ZERO_DTIME' ? now : 0
    let was = 0
    const ok = await updateInode(ctx, h, ino, (inode) => {
      was = inode.dtime
      // An orphan-list link left in a reserved inode: 0 while it has links, else a deletion time (PR_1_LOW_DTIME).
      if (p.code === 'INODE_LOW_DTIME' && inode.linksCount === 0) dtime = now
      inode.dtime = dtime
    })
    if (ok) out.push(fixed(1, dtime !== 0 ? 'DTIME_SET' : 'DTIME_CLEARED', `inode ${ino}: i_dtime ${was} → ${dtime}`, { ino }))
    else out.push(left(1, p.code, `${p.message} (not repaired: the inode table is outside the file system)`, { ino }))
  }
  return out
}

const COUNTED = new Set(['INODE_BAD_I_BLOCKS', 'INODE_BAD_SIZE', 'DIR_BAD_SIZE'])

/**
 * Pass 1 repair of the fields pass 1 counts from an inode's extents, as e2fsck -fy: i_blocks set
 * to the blocks its extents (and xattr block) hold ("i_blocks is X, should be Y. Fix? yes"), a
 * regular file's i_size raised to cover its last mapped block, a directory's set to its blocks'
 * end, a device's, FIFO's or socket's set to 0 ("i_size is X, should be Y. Fix? yes"). Left when
 * the inode's checksum fails or its extent tree is damaged: then the count itself is not to be
 * trusted, and rewriting the record would bless the rest of it; and for an inode on the orphan
 * list, whose short size is a truncate in progress that releasing the list completes. An inode
 * with multiply-claimed blocks keeps its i_blocks until pass 1B-1D (clone.ts) has answered it, as
 * e2fsck settles such an inode's blocks before it trusts their count: the count may include a
 * block that is not the inode's to count (a bogus extended attribute block), and a clone the step
 * refuses must find the record as the damage left it. Once cloned, the next sweep sets it; so
 * for an inode whose extended attribute block is bad (xattr.ts clears it first).
 */
export async function repairCountedFields({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const distrust = new Set(problems.filter((p) => p.pass === 1 && (p.code === 'INODE_CSUM' || p.code.startsWith('EXTENT_'))).map((p) => p.ino))
  // Counts that include a block the inode may not keep: what answers that block comes first.
  const heldBack = new Map<number | undefined, string>()
  for (const p of problems) {
    if (p.code === 'BLOCK_MULTIPLY_CLAIMED') heldBack.set(p.ino, 'its blocks are multiply claimed, and the clone step answers them first')
    else if (p.code === 'XATTR_BAD_BLOCK' && !heldBack.has(p.ino)) heldBack.set(p.ino, 'its extended attribute block is bad, and clearing it comes first')
  }
  const bs = ctx.img.blockSize
  for (const p of problems) {
    if (!COUNTED.has(p.code) || p.ino === undefined) continue
    const ino = p.ino
    const want = p.expected
    if (want === undefined || distrust.has(ino)) {
      out.push(left(1, p.code, `${p.message} (not repaired: ${want === undefined ? 'no count to set it to' : 'its checksum or extent tree fails too'})`, { ino }))
      continue
    }
    if (ctx.orphans.has(ino)) {
      // A truncate the kernel had begun (i_size first, the blocks after): releasing the orphan list finishes it.
      out.push(left(1, p.code, `${p.message} (not repaired: the inode is on the orphan list, a truncate in progress)`, { ino }))
      continue
    }
    const wait = p.code === 'INODE_BAD_I_BLOCKS' ? heldBack.get(ino) : undefined
    if (wait !== undefined) {
      out.push(left(1, p.code, `${p.message} (not repaired yet: ${wait})`, { ino }))
      continue
    }
    // Set inside the callback: an object, so the checks after it are not narrowed to the initial values.
    const seen = { was: 0, fits: true }
    const ok = await updateInode(ctx, h, ino, (inode) => {
      if (p.code === 'INODE_BAD_I_BLOCKS') {
        // With HUGE_FILE_FL the field counts file system blocks, not 512-byte units (blocksIn512).
        const huge = (inode.flags & INODE_FLAGS.HUGE_FILE) !== 0
        seen.was = huge ? inode.blocks * (bs / 512) : inode.blocks
        const stored = huge ? want / (bs / 512) : want
        seen.fits = Number.isSafeInteger(stored) && stored < 2 ** 48 && (stored < 2 ** 32 || hasFeature(ctx.img.sb, 'ro_compat', 'huge_file'))
        if (seen.fits) inode.blocks = stored
      } else {
        seen.was = inode.size
        inode.size = want
      }
    })
    if (!ok || !seen.fits) {
      out.push(left(1, p.code, `${p.message} (not repaired: ${ok ? `${want} does not fit the field` : 'the inode table is outside the file system'})`, { ino }))
      continue
    }
    const field = p.code === 'INODE_BAD_I_BLOCKS' ? 'i_blocks' : 'i_size'
    out.push(fixed(1, p.code === 'INODE_BAD_I_BLOCKS' ? 'I_BLOCKS_SET' : 'I_SIZE_SET', `inode ${ino}: ${field} ${seen.was} → ${want}`, { ino }))
  }
  return out
}
