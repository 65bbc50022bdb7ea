/*
 * Pass 1 repair of an inode's deletion time, as e2fsck -fy: a free inode
 * whose i_dtime is 0 ("Deleted inode has zero dtime. Fix? yes") gets the
 * current time; an inode in use (not an orphan) whose i_dtime is set ("Inode
 * is in use, but has dtime set. Fix? yes") gets 0. Left when the inode's
 * checksum also fails: rewriting the record would bless whatever changed it.
 */
import { updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

export async function repairDtimes({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const badSum = new Set(problems.filter((p) => p.code === 'INODE_CSUM').map((p) => p.ino))
  const now = Math.floor(Date.now() / 1000)
  for (const p of problems) {
    if ((p.code !== 'INODE_ZERO_DTIME' && p.code !== 'INODE_DTIME_SET') || p.ino === undefined) continue
    const ino = p.ino
    if (badSum.has(ino)) {
      out.push(left(1, p.code, `${p.message} (not repaired: the inode's checksum fails too)`, { ino }))
      continue
    }
    const dtime = p.code === 'INODE_ZERO_DTIME' ? now : 0
    let was = 0
    const ok = await updateInode(ctx, h, ino, (inode) => {
      was = inode.dtime
      inode.dtime = dtime
    })
    if (ok) out.push(fixed(1, p.code === 'INODE_ZERO_DTIME' ? 'DTIME_SET' : 'DTIME_CLEARED', `inode ${ino}: i_dtime ${was} → ${dtime}`, { ino }))
    else out.push(left(1, p.code, `${p.message} (not repaired: the inode table is outside the file system)`, { ino }))
  }
  return out
}
