/*
 * Pass 3 (and pass 4's unattached inodes) repair: what no path reaches is
 * linked into /lost+found as '#ino', made first if missing, as e2fsck -fy's
 * "Unconnected directory inode ... Connect to /lost+found? yes" and
 * "Unattached inode ... Connect to /lost+found? yes" (a zero-length one too,
 * which e2fsck would clear: keeping it loses nothing). A reconnected
 * directory's '..' is pointed at lost+found. Link counts (lost+found's, the
 * old parent's, the inode's own) are left to the pass 4 repair after the next
 * check. A full lost+found grows by a block first (dir-extend.ts), as
 * e2fsck's "No room in lost+found directory. Expand? yes". Nothing is reconnected while pass 1 reports what may hide blocks in
 * use (a new lost+found could take one of them), while pass 2 left a problem
 * (an unread directory block may name these inodes), or into an indexed
 * lost+found.
 */
import { setDxCsum, setLeafCsum } from '../../dir/dir-block.ts'
import { dirFsOf } from '../../dir/dir-file.ts'
import { FT } from '../../format/dirent.ts'
import { INODE_FLAGS, S_IFDIR } from '../../format/inode.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { FsckContext } from '../context.ts'
import { FT_OF } from '../pass2-dirs.ts'
import { extendDir } from './dir-extend.ts'
import { addEntry, NO_ROOM } from './dir-insert.ts'
import { createLostFound } from './lost-found.ts'
import { fixed, left, MAP_NEUTRAL } from './record.ts'
import type { Repair, StepInput } from './record.ts'

const MINE = new Set(['NO_LOST_FOUND', 'DIR_UNCONNECTED', 'INODE_UNATTACHED'])
/** dx_root's count/limit: after '.' (12 bytes), '..' (12) and dx_root_info (8). */
const DX_ROOT_COUNT_OFFSET = 0x20

/** Point directory ino's '..' at parent (block 0, second record). Why not, as a string. */
async function setDotdot(ctx: FsckContext, h: MetaTxn, ino: number, parent: number): Promise<true | string> {
  const dir = ctx.dirs.get(ino)
  const first = dir?.extents.find(([l]) => l === 0)
  if (dir === undefined || first === undefined) return `directory ${ino} has no block 0`
  const buf = await h.get(first[1])
  if (buf.readUInt16LE(4) !== 12 || buf[12 + 6] !== 2 || buf.toString('latin1', 12 + 8, 12 + 10) !== '..') return `directory ${ino}: no '..' as the second record`
  buf.writeUInt32LE(parent, 12)
  const fs = dirFsOf(ctx.img.sb)
  if ((dir.flags & INODE_FLAGS.INDEX) !== 0) setDxCsum(buf, fs, ino, dir.generation, DX_ROOT_COUNT_OFFSET)
  else setLeafCsum(buf, fs, ino, dir.generation)
  h.dirty(first[1])
  return true
}

export async function reconnect({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const mine = problems.filter((p) => MINE.has(p.code) && p.ino !== undefined)
  if (mine.length === 0) return []
  const hiding = problems.filter((p) => p.pass === 1 && p.severity === 'error' && !MAP_NEUTRAL.has(p.code))
  const leaveAll = (why: string): Repair[] => mine.map((p) => left(p.pass, p.code, `${p.message} (not repaired: ${why})`, p.ino === undefined ? {} : { ino: p.ino }))
  if (hiding.length > 0) return leaveAll(`pass 1 found ${[...new Set(hiding.map((p) => p.code))].join(', ')}`)
  // A directory block pass 2 could not read may hold the very entries that would reach these inodes.
  const unread = problems.filter((p) => p.pass === 2 && p.severity === 'error')
  if (unread.length > 0) return leaveAll(`pass 2 left ${[...new Set(unread.map((p) => p.code))].join(', ')}`)
  if (problems.some((p) => p.code === 'LOST_FOUND_NOT_DIR')) return leaveAll('/lost+found is not a directory')
  const out: Repair[] = []
  if (ctx.lostFound === 0) {
    const made = await createLostFound(ctx, h)
    if (typeof made === 'string') return leaveAll(`/lost+found cannot be made: ${made}`)
    out.push(fixed(3, 'LOST_FOUND_CREATED', `/lost+found created (inode ${made})`, { ino: made }))
  }
  const lf = ctx.lostFound
  const lfDir = ctx.dirs.get(lf)
  if (lfDir === undefined) return [...out, ...leaveAll(`/lost+found (inode ${lf}) was not read`)]
  for (const p of mine) {
    const ino = p.ino ?? 0
    if (p.code === 'NO_LOST_FOUND') continue
    const isDir = ctx.types[ino] === S_IFDIR >> 12
    const name = `#${ino}`
    const ft = FT_OF.get(ctx.types[ino] ?? 0) ?? FT.UNKNOWN
    let added = await addEntry(ctx, h, lf, lfDir, name, ino, ft)
    if (typeof added === 'string' && added.includes(NO_ROOM)) {
      // e2fsck: "No room in lost+found directory. Expand? yes", then the link again.
      const grown = await extendDir(ctx, h, lf, lfDir)
      if (typeof grown === 'string') added = `${added}, and it cannot grow: ${grown}`
      else {
        out.push(fixed(3, 'LOST_FOUND_EXPANDED', `/lost+found (inode ${lf}) had no room: grown by block ${grown}`, { ino: lf, block: grown }))
        added = await addEntry(ctx, h, lf, lfDir, name, ino, ft)
      }
    }
    if (added !== true) {
      out.push(left(p.pass, p.code, `${p.message} (not repaired: ${added})`, { ino }))
      continue
    }
    if (isDir) {
      const set = await setDotdot(ctx, h, ino, lf)
      if (set !== true) {
        out.push(left(p.pass, p.code, `${p.message} (entry added, '..' not set: ${set})`, { ino }))
        continue
      }
    }
    out.push(fixed(3, 'RECONNECTED', `${isDir ? 'directory' : 'inode'} ${ino} connected to /lost+found as '${name}'`, { ino }))
  }
  return out
}
