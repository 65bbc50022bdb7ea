/*
 * The orphan chain (s_last_orphan, each inode's i_dtime naming the next):
 * inodes unlinked while open, or being truncated, that the kernel finishes
 * at the next mount. They are in use with no directory entry. The chain is
 * followed at most s_inodes_count steps, so a loop ends.
 */
import type { FsckContext } from './context.ts'
import { errText } from './problems.ts'

export async function readOrphans(ctx: FsckContext): Promise<void> {
  const sb = ctx.img.sb
  let ino = sb.lastOrphan
  let steps = 0
  while (ino !== 0) {
    if (ino < sb.firstIno || ino > sb.inodesCount) {
      ctx.report.add(1, 'ORPHAN_BAD_INODE', `orphan chain names inode ${ino}, outside ${sb.firstIno}..${sb.inodesCount}`, { ino })
      return
    }
    if (ctx.orphans.has(ino) || ++steps > sb.inodesCount) {
      ctx.report.add(1, 'ORPHAN_LOOP', `orphan chain returns to inode ${ino}`, { ino })
      return
    }
    ctx.orphans.add(ino)
    try {
      ino = (await ctx.img.readInode(ino)).dtime
    } catch (err) {
      ctx.report.add(1, 'ORPHAN_BAD_INODE', `orphan inode ${ino}: ${errText(err)}`, { ino })
      return
    }
  }
  if (ctx.orphans.size > 0) ctx.report.note(1, 'ORPHANS_PENDING', `${ctx.orphans.size} orphan inode${ctx.orphans.size > 1 ? 's' : ''} to be released at the next mount`)
}
