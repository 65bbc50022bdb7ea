/*
 * Pass 1 repair of the flags inode-flags.ts judges, as e2fsck -fy: each flag
 * that cannot stand is cleared (IMAGIC, CASEFOLD, ENCRYPT without a context,
 * IMMUTABLE/APPEND on a special file, INDEX where no htree can be), and
 * EXTENTS_FL is set on a file whose i_block holds a sound extent root;
 * i_faddr is zeroed. All of one inode's answers go in one write. Left when the inode's checksum also
 * fails: rewriting the record would bless whatever changed it.
 */
import { FLAG_FIXES, I_FADDR_OFFSET, I_FLAGS_OFFSET } from '../inode-flags.ts'
import { patchInodeRaw } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

export async function repairInodeFlags({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const badSum = new Set(problems.filter((p) => p.code === 'INODE_CSUM').map((p) => p.ino))
  const perInode = new Map<number, { clear: number; set: number; faddr: boolean; codes: string[] }>()
  for (const p of problems) {
    const fix = FLAG_FIXES.get(p.code)
    if (fix === undefined || p.ino === undefined) continue
    if (badSum.has(p.ino)) {
      out.push(left(1, p.code, `${p.message} (not repaired: the inode's checksum fails too)`, { ino: p.ino }))
      continue
    }
    const acc = perInode.get(p.ino) ?? { clear: 0, set: 0, faddr: false, codes: [] }
    acc.clear |= fix.clear
    acc.set |= fix.set
    acc.faddr ||= fix.faddr === true
    acc.codes.push(p.code)
    perInode.set(p.ino, acc)
  }
  for (const [ino, { clear, set, faddr, codes }] of perInode) {
    let was = 0
    let now = 0
    // In place in the record: i_faddr is no field of the decoded inode.
    const ok = await patchInodeRaw(ctx, h, ino, (raw) => {
      was = raw.readUInt32LE(I_FLAGS_OFFSET)
      now = ((was & ~clear) | set) >>> 0
      raw.writeUInt32LE(now, I_FLAGS_OFFSET)
      if (faddr) raw.writeUInt32LE(0, I_FADDR_OFFSET)
    })
    if (!ok) {
      for (const code of codes) out.push(left(1, code, `inode ${ino}: not repaired (the inode table is outside the file system)`, { ino }))
      continue
    }
    const what = [...(was === now ? [] : [`i_flags 0x${was.toString(16)} → 0x${now.toString(16)}`]), ...(faddr ? ['i_faddr → 0'] : [])]
    out.push(fixed(1, 'INODE_FLAGS_SET', `inode ${ino}: ${what.join(', ')} (${codes.join(', ')})`, { ino }))
  }
  return out
}
