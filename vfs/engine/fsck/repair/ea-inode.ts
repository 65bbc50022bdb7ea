/*
 * Repairs of values kept in their own inode (ea_inode, ../ea-inode.ts), as
 * e2fsck -fy makes them. Pass 1: attributes in an inode body that cannot
 * stand are all dropped, the body's magic zeroed ("Extended attribute in
 * inode %i has ... which is invalid. Clear? yes"; e2fsck check_ea_in_inode);
 * a value inode lacking EA_INODE_FL gets it ("EA inode %N for parent inode
 * %i missing EA_INODE flag. Fix? yes"). Pass 4: a value inode's count is set
 * to the entries that name it, in i_ctime (high word) and i_version (low
 * word) where the kernel keeps it ("Extended attribute inode %i ref count is
 * %N, should be %n. Fix? yes"). A value inode that nothing names any more is
 * pass 4's unattached inode, for lost+found (reconnect.ts), as e2fsck does.
 * An inode whose record fails its checksum is left (rewriting it would bless
 * the rest of it).
 */
import { EA_INODE_FL } from '../ea-inode.ts'
import { ibodyStart } from '../xattr-ibody.ts'
import { patchInodeRaw, updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

const I_CTIME = 0xc
const I_VERSION_LO = 0x24

function distrusted(problems: StepInput['problems']): Set<number> {
  return new Set(problems.filter((p) => p.pass === 1 && p.ino !== undefined && p.code === 'INODE_CSUM').map((p) => p.ino ?? 0))
}

/** Pass 1: in-body attributes cleared, missing EA_INODE_FL set. */
export async function repairEaInodeEntries({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const distrust = distrusted(problems)
  for (const p of problems) {
    if (p.pass !== 1 || p.ino === undefined || (p.code !== 'XATTR_IBODY_BAD' && p.code !== 'EA_INODE_NO_FLAG')) continue
    const ino = p.ino
    if (distrust.has(ino)) {
      out.push(left(1, p.code, `${p.message} (not repaired: the inode's checksum fails too)`, { ino }))
      continue
    }
    let done: boolean
    if (p.code === 'EA_INODE_NO_FLAG') {
      done = await updateInode(ctx, h, ino, (inode) => void (inode.flags |= EA_INODE_FL))
    } else {
      done = await patchInodeRaw(ctx, h, ino, (raw) => {
        const at = ibodyStart(raw.length, raw.readUInt16LE(0x80))
        if (at !== undefined) raw.writeUInt32LE(0, at)
      })
    }
    if (!done) {
      out.push(left(1, p.code, `${p.message} (not repaired: its inode table is outside the file system)`, { ino }))
      continue
    }
    out.push(p.code === 'EA_INODE_NO_FLAG'
      ? fixed(1, 'EA_INODE_FLAG_SET', `inode ${ino}: EA_INODE_FL set (it holds an extended attribute value)`, { ino })
      : fixed(1, 'XATTR_IBODY_CLEARED', `inode ${ino}: its in-inode extended attributes cleared`, { ino }))
  }
  return out
}

/** Pass 4: each value inode's stored count set to the entries naming it. */
export async function repairEaInodeCounts({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const distrust = distrusted(problems)
  for (const p of problems) {
    if (p.pass !== 4 || p.code !== 'EA_INODE_REFCOUNT' || p.ino === undefined || p.expected === undefined) continue
    const ino = p.ino
    const n = p.expected
    if (distrust.has(ino)) {
      out.push(left(4, p.code, `${p.message} (not repaired: the inode's checksum fails too)`, { ino }))
      continue
    }
    const done = await patchInodeRaw(ctx, h, ino, (raw) => {
      raw.writeUInt32LE(Math.floor(n / 2 ** 32), I_CTIME)
      raw.writeUInt32LE(n % 2 ** 32, I_VERSION_LO)
    })
    out.push(done
      ? fixed(4, 'EA_INODE_REFCOUNT_SET', `extended attribute inode ${ino}: ref count set to ${n}`, { ino })
      : left(4, p.code, `${p.message} (not repaired: its inode table is outside the file system)`, { ino }))
  }
  return out
}
