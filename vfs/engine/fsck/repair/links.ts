/*
 * Pass 4 repair: i_links_count set to the entries that name the inode (with
 * dir_nlink's 1 for a directory past 65000 links), as e2fsck's "Inode N ref
 * count is X, should be Y. Fix? yes". An inode pass 1 also found fault with
 * is left: rewriting its record would bless the rest of it. An inode no entry
 * names (INODE_UNATTACHED) goes to lost+found (reconnect.ts). While pass 2
 * still finds records it cannot read (left by the directory step: damage in
 * '.' or '..'), or a directory's extent tree could not be walked (pass 2 never
 * read it), the counted entries are a lower bound, so no count is lowered:
 * a count below the true one frees a file that is still named.
 */
import { S_IFDIR } from '../../format/inode.ts'
import { updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

/** EXT4_LINK_MAX, as pass4-links.ts. */
const LINK_MAX = 65000

/** Pass 2 problems after which some entries went uncounted. */
const UNREAD = new Set(['DIRENT_BAD_REC_LEN', 'DIR_BAD_DOT', 'DIR_BAD_DOTDOT'])

export async function repairLinkCounts({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const DIR = S_IFDIR >> 12
  // Also a directory pass 1 could not walk (a bad extent header or node): pass 2 never read its entries.
  const unread = problems.some((p) => (p.pass === 2 && UNREAD.has(p.code)) || (p.pass === 1 && p.severity === 'error' && p.ino !== undefined && ctx.types[p.ino] === DIR && !ctx.dirs.has(p.ino)))
  const faulty = new Set(problems.filter((p) => p.pass === 1 && p.severity === 'error' && p.ino !== undefined).map((p) => p.ino))
  for (const p of problems) {
    if (p.pass !== 4 || p.severity !== 'error') continue
    const ino = p.ino
    // Unattached inodes are reconnect.ts's, value inodes' counts ea-inode.ts's.
    if (p.code === 'INODE_UNATTACHED' || p.code === 'EA_INODE_REFCOUNT') continue
    if (p.code !== 'LINK_COUNT_WRONG' || ino === undefined) {
      out.push(left(4, p.code, `${p.message} (not repaired)`, ino === undefined ? {} : { ino }))
      continue
    }
    if (faulty.has(ino)) {
      out.push(left(4, p.code, `${p.message} (not repaired: pass 1 found the inode faulty)`, { ino }))
      continue
    }
    let counted = ctx.refs[ino] ?? 0
    if (ctx.types[ino] === DIR && counted > LINK_MAX) counted = 1
    // A value inode no directory names has its attribute entries for one link (pass4-links.ts).
    if (counted === 0 && ctx.eaInodes.has(ino) && (ctx.eaRefs.get(ino) ?? 0) > 0) counted = 1
    const was = ctx.linksCount[ino] ?? 0
    if (unread && counted < was) {
      out.push(left(4, p.code, `${p.message} (not repaired: pass 2 could not read every entry, so ${counted} may be short)`, { ino }))
      continue
    }
    if (counted < 1 || counted > 0xffff || !(await updateInode(ctx, h, ino, (inode) => void (inode.linksCount = counted)))) {
      out.push(left(4, p.code, `${p.message} (not repaired)`, { ino }))
      continue
    }
    out.push(fixed(4, p.code, `inode ${ino}: i_links_count ${was} → ${counted}`, { ino }))
  }
  return out
}
