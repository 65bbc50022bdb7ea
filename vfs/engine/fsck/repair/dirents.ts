/*
 * Pass 2 repair, one directory leaf block at a time, for the blocks pass 2
 * named: an entry naming a free, reserved or out-of-range inode is removed
 * (its space joins the record before it, as the engine deletes); an entry
 * whose file type disagrees with its inode gets the inode's; a leaf whose
 * checksum alone is wrong gets it rewritten. e2fsck -fy does the same
 * ("Entry ... has deleted/unused inode. Clear? yes", "Setting filetype",
 * "directory passes checks but fails checksum. Fix? yes"). A leaf whose
 * records stop parsing, that holds a bad name, or that has no checksum tail
 * where one is due is salvaged (see Salvage); a '.' or '..' whose name is not
 * NUL-terminated gets the NUL (e2fsck's "is not NULL terminated. Fix? yes");
 * other damage in '.' or '..' and an htree index block are left as they are. An htree
 * leaf whose checksum fails is the htree step's (htree-clear.ts): a changed
 * name may no longer hash into the leaf's range, so the index is cleared
 * first and the leaf is then judged here as a linear one.
 */
import { composeLeaf, leafEnd, removeFromBlock, setLeafCsum } from '../../dir/dir-block.ts'
import type { NewEntry } from '../../dir/dir-block.ts'
import { dirFsOf } from '../../dir/dir-file.ts'
import { DIR_ENTRY_HEADER, DIR_TAIL_FT, DIR_TAIL_SIZE, dirRecLen, FT, recLenFromDisk } from '../../format/dirent.ts'
import { INODE_FLAGS } from '../../format/inode.ts'
import { ROOT_INO } from '../../reader/image.ts'
import type { DirInfo, FsckContext } from '../context.ts'
import { FT_OF } from '../pass2-dirs.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

const MINE = new Set(['DIRENT_UNUSED_INODE', 'DIRENT_BAD_INODE', 'DIRENT_BAD_FILETYPE', 'DIR_CSUM', 'DIRENT_BAD_REC_LEN', 'DIRENT_BAD_NAME', 'DIR_DOT_NOT_NUL'])

type Action =
  | { kind: 'remove'; name: Buffer; child: number; why: string }
  | { kind: 'type'; off: number; name: Buffer; from: number; to: number }
  /** The byte after '.' or '..' made NUL (e2fsck: "'.' directory entry ... is not NULL terminated. Fix? yes"). */
  | { kind: 'nul'; off: number; name: Buffer }

/**
 * A leaf whose records do not parse, or that lacks its checksum tail, is rebuilt from the records
 * that still parse (as e2fsck's salvage_directory): the good ones before the damage are packed
 * again with a tail; the names after it are lost from this directory, and their inodes, now
 * unreferenced, go to lost+found in the reconnect step, so no file is lost.
 */
interface Salvage {
  keep: NewEntry[]
  why: string
}

/** The logical block of physical block pblk in dir, or undefined. */
function logicalOf(dir: DirInfo, pblk: number): number | undefined {
  for (const [l, p, n] of dir.extents) if (pblk >= p && pblk < p + n) return l + (pblk - p)
  return undefined
}

/** What to change in a leaf, or why it is left: the same walk and judgements as pass 2's checkDirBlock. */
function plan(ctx: FsckContext, ino: number, block: Buffer, lblk: number): { actions: Action[]; salvage?: Salvage } | string {
  const sb = ctx.img.sb
  const bs = block.length
  const t = bs - DIR_TAIL_SIZE
  const hasTail = block.readUInt32LE(t) === 0 && block.readUInt16LE(t + 4) === DIR_TAIL_SIZE && block[t + 7] === DIR_TAIL_FT
  const end = ctx.csum && hasTail ? t : bs
  const fileType = dirFsOf(sb).fileType
  const actions: Action[] = []
  const keep: NewEntry[] = []
  let damage = ctx.csum && !hasTail ? 'no checksum tail' : ''
  for (let off = 0, k = 0; off < end; k++) {
    const recLen = off + DIR_ENTRY_HEADER > end ? 0 : recLenFromDisk(block.readUInt16LE(off + 4), bs)
    const nameLen = off + DIR_ENTRY_HEADER > end ? 0 : (block[off + 6] ?? 0)
    if (recLen < 12 || recLen % 4 !== 0 || recLen < DIR_ENTRY_HEADER + nameLen || off + recLen > end) {
      // '.' and '..' themselves damaged: rebuilding them is e2fsck's pass 2 work we do not do.
      if (lblk === 0 && k < 2) return `record at ${off} ('${k === 0 ? '.' : '..'}') has rec_len ${recLen}`
      damage = `record at ${off} has rec_len ${recLen}, name_len ${nameLen}: the ${end - off} bytes from it dropped`
      break
    }
    const child = block.readUInt32LE(off)
    const name = Buffer.from(block.subarray(off + DIR_ENTRY_HEADER, off + DIR_ENTRY_HEADER + nameLen))
    const ft = block[off + 7] ?? 0
    const at = off
    off += recLen
    if ((lblk === 0 && k < 2) || child === 0) {
      const pad = at + DIR_ENTRY_HEADER + nameLen
      const isDots = lblk === 0 && name.toString('latin1') === (k === 0 ? '.' : '..')
      if (isDots && block[pad] !== 0) actions.push({ kind: 'nul', off: pad, name })
      // '.' and '..' carry their directory's file type, as pass 2 judges them.
      let type = ft
      if (isDots && child !== 0 && child <= sb.inodesCount && ctx.inodes.get(child)) {
        type = fileType ? (k === 0 ? FT.DIR : (FT_OF.get(ctx.types[child] ?? 0) ?? FT.UNKNOWN)) : FT.UNKNOWN
        if (ft !== type) actions.push({ kind: 'type', off: at, name, from: ft, to: type })
      }
      if (child !== 0 || (lblk === 0 && k < 2)) keep.push({ inode: child, fileType: type, name })
      continue
    }
    const text = name.toString('latin1')
    if (nameLen === 0 || text === '.' || text === '..' || name.includes(0x2f) || name.includes(0)) {
      // Dropped, not renamed: a new name could collide or leave its htree leaf's hash range; the
      // inode is reconnected to lost+found, its data kept.
      actions.push({ kind: 'remove', name, child, why: 'a bad name' })
      continue
    }
    if ((child < sb.firstIno && child !== ROOT_INO) || child > sb.inodesCount || !ctx.inodes.get(child)) {
      actions.push({ kind: 'remove', name, child, why: child > sb.inodesCount || child < sb.firstIno ? 'reserved or out of range' : 'not in use' })
      continue
    }
    const want = fileType ? (FT_OF.get(ctx.types[child] ?? 0) ?? FT.UNKNOWN) : FT.UNKNOWN
    if (ft !== want) actions.push({ kind: 'type', off: at, name, from: ft, to: want })
    keep.push({ inode: child, fileType: want, name })
  }
  const badName = actions.some((a) => a.kind === 'remove' && a.why === 'a bad name')
  if (damage === '' && !badName) return { actions }
  if (damage === '') damage = 'an entry with a bad name'
  return { actions, salvage: { keep, why: damage } }
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
    const p = plan(ctx, ino, buf, lblk)
    if (typeof p === 'string') {
      leave(p)
      continue
    }
    const { actions, salvage } = p
    if (actions.length === 0 && salvage === undefined && !codes.has('DIR_CSUM')) continue
    for (const a of actions) {
      const name = a.name.toString('latin1')
      if (a.kind === 'remove') {
        if (salvage === undefined) removeFromBlock(buf, dirFs, a.name)
        out.push(fixed(2, 'DIRENT_REMOVED', `directory ${ino}: entry '${name}' removed (inode ${a.child} ${a.why})`, where))
      } else if (a.kind === 'nul') {
        buf[a.off] = 0
        out.push(fixed(2, 'DIR_DOT_NUL_SET', `directory ${ino}: '${name}' NUL-terminated`, where))
      } else {
        buf[a.off + 7] = a.to
        out.push(fixed(2, 'DIRENT_FILETYPE_SET', `directory ${ino}: entry '${name}' file type ${a.from} → ${a.to}`, where))
      }
    }
    if (salvage !== undefined) {
      const kept = salvage.keep.filter((e, i) => e.inode !== 0 || (lblk === 0 && i < 2))
      // Records that ran into the tail's place may not all fit once it is back: the last go to lost+found.
      while (kept.length > (lblk === 0 ? 2 : 0) && kept.reduce((n, e) => n + dirRecLen(e.name.length), 0) > leafEnd(dirFs)) kept.pop()
      composeLeaf(buf, dirFs, kept.length > 0 ? kept : [{ inode: 0, fileType: 0, name: Buffer.alloc(0) }])
      out.push(fixed(2, 'DIR_SALVAGED', `directory ${ino} block ${pblk}: rebuilt from its ${kept.length} readable entries (${salvage.why})`, where))
    }
    setLeafCsum(buf, dirFs, ino, dir.generation)
    h.dirty(pblk)
    if (actions.length === 0 && salvage === undefined) out.push(fixed(2, 'DIR_CSUM_SET', `directory ${ino} block ${pblk}: checksum rewritten (the block passes checks)`, where))
  }
  return out
}
