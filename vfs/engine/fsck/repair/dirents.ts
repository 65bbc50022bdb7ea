/*
 * Pass 2 repair, one directory leaf block at a time, for the blocks pass 2
 * named: an entry naming a free, reserved or out-of-range inode is removed
 * (its space joins the record before it, as the engine deletes); an entry
 * whose file type disagrees with its inode gets the inode's; a leaf whose
 * checksum alone is wrong gets it rewritten. e2fsck -fy does the same
 * ("Entry ... has deleted/unused inode. Clear? yes", "Setting filetype",
 * "directory passes checks but fails checksum. Fix? yes"). A block whose
 * records do not parse, that holds a bad name, that is an htree index block,
 * or that has no checksum tail where one is due is left as it is. An htree
 * leaf whose checksum fails is the htree step's (htree-clear.ts): a changed
 * name may no longer hash into the leaf's range, so the index is cleared
 * first and the leaf is then judged here as a linear one.
 */
import { removeFromBlock, setLeafCsum } from '../../dir/dir-block.ts'
import { dirFsOf } from '../../dir/dir-file.ts'
import { DIR_ENTRY_HEADER, DIR_TAIL_FT, DIR_TAIL_SIZE, FT, recLenFromDisk } from '../../format/dirent.ts'
import { INODE_FLAGS } from '../../format/inode.ts'
import { ROOT_INO } from '../../reader/image.ts'
import type { DirInfo, FsckContext } from '../context.ts'
import { FT_OF } from '../pass2-dirs.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

const MINE = new Set(['DIRENT_UNUSED_INODE', 'DIRENT_BAD_INODE', 'DIRENT_BAD_FILETYPE', 'DIR_CSUM'])

type Action = { kind: 'remove'; name: Buffer; child: number } | { kind: 'type'; off: number; name: Buffer; from: number; to: number }

/** The logical block of physical block pblk in dir, or undefined. */
function logicalOf(dir: DirInfo, pblk: number): number | undefined {
  for (const [l, p, n] of dir.extents) if (pblk >= p && pblk < p + n) return l + (pblk - p)
  return undefined
}

/** What to change in a leaf, or why it is left: the same walk and judgements as pass 2's checkDirBlock. */
function plan(ctx: FsckContext, ino: number, block: Buffer, lblk: number): Action[] | string {
  const sb = ctx.img.sb
  const bs = block.length
  const t = bs - DIR_TAIL_SIZE
  const hasTail = block.readUInt32LE(t) === 0 && block.readUInt16LE(t + 4) === DIR_TAIL_SIZE && block[t + 7] === DIR_TAIL_FT
  if (ctx.csum && !hasTail) return 'no checksum tail'
  const end = ctx.csum ? t : bs
  const fileType = dirFsOf(sb).fileType
  const actions: Action[] = []
  for (let off = 0, k = 0; off < end; k++) {
    if (off + DIR_ENTRY_HEADER > end) return `record at ${off} crosses the block end`
    const child = block.readUInt32LE(off)
    const recLen = recLenFromDisk(block.readUInt16LE(off + 4), bs)
    const nameLen = block[off + 6] ?? 0
    if (recLen < 12 || recLen % 4 !== 0 || recLen < DIR_ENTRY_HEADER + nameLen || off + recLen > end) return `record at ${off} has rec_len ${recLen}`
    const name = Buffer.from(block.subarray(off + DIR_ENTRY_HEADER, off + DIR_ENTRY_HEADER + nameLen))
    const at = off
    off += recLen
    if ((lblk === 0 && k < 2) || child === 0) continue
    const text = name.toString('latin1')
    if (nameLen === 0 || text === '.' || text === '..' || name.includes(0x2f) || name.includes(0)) return `entry at ${at} has a bad name`
    if ((child < sb.firstIno && child !== ROOT_INO) || child > sb.inodesCount || !ctx.inodes.get(child)) {
      actions.push({ kind: 'remove', name, child })
      continue
    }
    const want = fileType ? (FT_OF.get(ctx.types[child] ?? 0) ?? FT.UNKNOWN) : FT.UNKNOWN
    const ft = block[at + 7] ?? 0
    if (ft !== want) actions.push({ kind: 'type', off: at, name, from: ft, to: want })
  }
  return actions
}

export async function repairDirEntries({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const blocks = new Map<number, { ino: number; codes: Set<string> }>()
  for (const p of problems) {
    if (p.pass !== 2 || !MINE.has(p.code) || p.ino === undefined || p.block === undefined) continue
    const b = blocks.get(p.block) ?? { ino: p.ino, codes: new Set<string>() }
    b.codes.add(p.code)
    blocks.set(p.block, b)
  }
  const dirFs = dirFsOf(ctx.img.sb)
  for (const [pblk, { ino, codes }] of blocks) {
    const dir = ctx.dirs.get(ino)
    const lblk = dir === undefined ? undefined : logicalOf(dir, pblk)
    const where = { ino, block: pblk }
    const leave = (why: string): void => {
      for (const code of codes) out.push(left(2, code, `directory ${ino} block ${pblk}: not repaired: ${why}`, where))
    }
    if (dir === undefined || lblk === undefined) {
      leave('the block is not one of the directory\'s')
      continue
    }
    const indexed = (dir.flags & INODE_FLAGS.INDEX) !== 0
    if (lblk === 0 && indexed) {
      leave('an htree root')
      continue
    }
    if (indexed && codes.has('DIR_CSUM')) {
      // A flipped bit in a name may have moved it out of the leaf's hash range, which pass 2 does not judge.
      leave('a leaf of an htree directory whose checksum fails: a name may have changed its hash (e2fsck -fy rebuilds the index)')
      continue
    }
    const buf = await h.get(pblk)
    const actions = plan(ctx, ino, buf, lblk)
    if (typeof actions === 'string') {
      leave(actions)
      continue
    }
    if (actions.length === 0 && !codes.has('DIR_CSUM')) continue
    for (const a of actions) {
      const name = a.name.toString('latin1')
      if (a.kind === 'remove') {
        removeFromBlock(buf, dirFs, a.name)
        const why = a.child > ctx.img.sb.inodesCount || a.child < ctx.img.sb.firstIno ? 'reserved or out of range' : 'not in use'
        out.push(fixed(2, 'DIRENT_REMOVED', `directory ${ino}: entry '${name}' removed (inode ${a.child} ${why})`, where))
      } else {
        buf[a.off + 7] = a.to
        out.push(fixed(2, 'DIRENT_FILETYPE_SET', `directory ${ino}: entry '${name}' file type ${a.from} → ${a.to}`, where))
      }
    }
    setLeafCsum(buf, dirFs, ino, dir.generation)
    h.dirty(pblk)
    if (actions.length === 0) out.push(fixed(2, 'DIR_CSUM_SET', `directory ${ino} block ${pblk}: checksum rewritten (the block passes checks)`, where))
  }
  return out
}
