/*
 * Pass 4, link counts: each inode in use against the directory entries that
 * name it (pass 2 counted '.' and '..' too, so a directory counts its
 * parent's entry, its own '.' and each subdirectory's '..'). An inode in use
 * that no entry names is unattached, unless it waits on the orphan chain or
 * is a value inode that attribute entries name (ea-inode.ts): then those
 * entries are its one link and its stored reference count must be theirs
 * (e2fsck 1.47 pass 4 check_ea_inode; a value inode a directory also names is
 * counted as a file, as there).
 */
import { hasFeature } from '../format/features.ts'
import { S_IFDIR } from '../format/inode.ts'
import { ROOT_INO } from '../reader/image.ts'
import type { FsckContext } from './context.ts'
import { storedRef, storedRefIs } from './ea-inode.ts'

/** EXT4_LINK_MAX: a directory with more subdirectories keeps i_links_count 1 (dir_nlink). */
const LINK_MAX = 65000

export function checkLinkCounts(ctx: FsckContext): void {
  const sb = ctx.img.sb
  const dirNlink = hasFeature(sb, 'ro_compat', 'dir_nlink')
  for (let ino = 1; ino <= sb.inodesCount; ino++) {
    if (!ctx.inodes.get(ino) || (ino < sb.firstIno && ino !== ROOT_INO)) continue
    let counted = ctx.refs[ino] ?? 0
    const links = ctx.linksCount[ino] ?? 0
    if (counted === 0) {
      if (ctx.orphans.has(ino) || (ctx.types[ino] ?? 0) === 0) continue
      // A value inode (EA_INODE_FL) is named by attribute entries, not directories: they count as its one link.
      const ea = ctx.eaInodes.get(ino)
      const eaRefs = ctx.eaRefs.get(ino) ?? 0
      if (ea === undefined || eaRefs === 0) {
        ctx.report.add(4, 'INODE_UNATTACHED', `inode ${ino} (${links} links) is in use but no directory entry names it`, { ino })
        continue
      }
      counted = 1
      if (!storedRefIs(ea, eaRefs) && !ea.lustre) {
        ctx.report.add(4, 'EA_INODE_REFCOUNT', `extended attribute inode ${ino} ref count is ${storedRef(ea)}, should be ${eaRefs}`, { ino, expected: eaRefs })
      }
    }
    if (ctx.types[ino] === S_IFDIR >> 12 && counted > LINK_MAX) {
      if (!dirNlink) ctx.report.add(4, 'DIR_NLINK_NEEDED', `directory ${ino} has ${counted} links without the dir_nlink feature`, { ino })
      counted = 1
    }
    if (links !== counted) ctx.report.add(4, 'LINK_COUNT_WRONG', `inode ${ino}: i_links_count ${links}, counted ${counted}`, { ino })
  }
}
