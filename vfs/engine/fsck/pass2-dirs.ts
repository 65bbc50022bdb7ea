/*
 * Pass 2, directory contents: every block of every directory (checksum tail,
 * each record's rec_len and name_len, '.' then '..' at the start, names, the
 * inode each entry names: in range, in use, of the type the entry says), the
 * entry counts pass 4 compares with i_links_count, and which directory holds
 * each subdirectory's entry for pass 3. Indexed directories first have their
 * htree walked (htree-check.ts) so its blocks are told from leaves.
 */
import { hasFeature } from '../format/features.ts'
import { DIR_ENTRY_HEADER, DIR_TAIL_FT, DIR_TAIL_SIZE, FT, recLenFromDisk } from '../format/dirent.ts'
import { INODE_FLAGS, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from '../format/inode.ts'
import { ROOT_INO } from '../reader/image.ts'
import type { DirInfo, FsckContext } from './context.ts'
import { checkHtree, dirBlockMap } from './htree-check.ts'

/** The dirent file_type each inode type must carry (fmt >> 12 → FT). */
export const FT_OF: ReadonlyMap<number, number> = new Map([
  [S_IFREG >> 12, FT.REG_FILE],
  [S_IFDIR >> 12, FT.DIR],
  [S_IFCHR >> 12, FT.CHRDEV],
  [S_IFBLK >> 12, FT.BLKDEV],
  [S_IFIFO >> 12, FT.FIFO],
  [S_IFSOCK >> 12, FT.SOCK],
  [S_IFLNK >> 12, FT.SYMLINK],
])
/** Blocks read at once when a directory's blocks are contiguous. */
const READ_RUN = 64

export async function checkDirectories(ctx: FsckContext): Promise<void> {
  for (const [ino, dir] of ctx.dirs) await checkDirectory(ctx, ino, dir)
}

async function checkDirectory(ctx: FsckContext, ino: number, dir: DirInfo): Promise<void> {
  const bs = ctx.img.blockSize
  const mapped = dir.extents.reduce((end, [l, , n]) => Math.max(end, l + n), 0)
  const nblocks = Math.min(Math.floor(dir.size / bs), mapped)
  const map = dirBlockMap(dir, nblocks)
  const indexed = (dir.flags & INODE_FLAGS.INDEX) !== 0 && hasFeature(ctx.img.sb, 'compat', 'dir_index')
  const dx = indexed ? await checkHtree(ctx, ino, dir, map, nblocks) : undefined
  let next = 0
  for (const [l, p, n] of map.runs) {
    if (l > next) ctx.report.add(2, 'DIR_HOLE', `directory ${ino}: logical blocks ${next}..${l - 1} are a hole`, { ino })
    next = l + n
    for (let i = 0; i < n; i += READ_RUN) {
      const run = Math.min(READ_RUN, n - i)
      const data = await ctx.img.readBlocks(p + i, run, `directory ${ino}`)
      for (let j = 0; j < run; j++) {
        const lblk = l + i + j
        const pblk = p + i + j
        const block = data.subarray(j * bs, (j + 1) * bs)
        const isDx = dx?.nodes.has(lblk) === true
        if (ctx.csum) ctx.verify(2, isDx ? 'HTREE_CSUM' : 'DIR_CSUM', isDx ? 'dx-block' : 'dir-block', block, { block: pblk, ino, generation: dir.generation })
        // An interior htree node is one empty record spanning the block: no names to check.
        if (isDx && lblk !== 0) continue
        checkDirBlock(ctx, ino, dir, block, lblk, pblk, isDx)
      }
    }
  }
  if (map.pblkOf(0) === undefined) ctx.report.add(2, 'DIR_BAD_DOT', `directory ${ino} has no block 0 ('.' and '..')`, { ino })
}

function checkDirBlock(ctx: FsckContext, ino: number, dir: DirInfo, block: Buffer, lblk: number, pblk: number, isDxRoot: boolean): void {
  const r = ctx.report
  const bs = block.length
  const sb = ctx.img.sb
  const t = bs - DIR_TAIL_SIZE
  // The htree root keeps its dx_tail inside '..''s record; stale bytes there may look like a dirent tail.
  const hasTail = ctx.csum && !isDxRoot && block.readUInt32LE(t) === 0 && block.readUInt16LE(t + 4) === DIR_TAIL_SIZE && block[t + 7] === DIR_TAIL_FT
  const end = hasTail ? t : bs
  const filetype = hasFeature(sb, 'incompat', 'filetype')
  const where = { ino, block: pblk }
  let off = 0
  for (let k = 0; off < end; k++) {
    if (off + DIR_ENTRY_HEADER > end) {
      r.add(2, 'DIRENT_BAD_REC_LEN', `directory ${ino} block ${lblk}: record at ${off} crosses the block end`, where)
      return
    }
    const child = block.readUInt32LE(off)
    const recLen = recLenFromDisk(block.readUInt16LE(off + 4), bs)
    const nameLen = block[off + 6] ?? 0
    const ft = block[off + 7] ?? 0
    if (recLen < 12 || recLen % 4 !== 0 || recLen < DIR_ENTRY_HEADER + nameLen || off + recLen > end) {
      r.add(2, 'DIRENT_BAD_REC_LEN', `directory ${ino} block ${lblk}: record at ${off} has rec_len ${recLen}, name_len ${nameLen}`, where)
      return
    }
    const name = block.subarray(off + DIR_ENTRY_HEADER, off + DIR_ENTRY_HEADER + nameLen)
    const text = name.toString('latin1')
    // The byte after '.' or '..' (inside the record: rec_len is at least 12): e2fsck wants it NUL
    // (pass 2 check_dot, check_dotdot: "is not NULL terminated").
    const pad = block[off + DIR_ENTRY_HEADER + nameLen] ?? 0
    off += recLen
    if (lblk === 0 && k === 0) {
      if (text !== '.' || child !== ino) r.add(2, 'DIR_BAD_DOT', `directory ${ino}: first entry is '${text}' -> ${child}, not '.' -> ${ino}`, where)
      else {
        // Still the directory's own entry: counted, whatever its padding.
        if (pad !== 0) r.add(2, 'DIR_DOT_NOT_NUL', `directory ${ino}: '.' is not NUL-terminated`, where)
        // e2fsck's check_filetype judges '.' and '..' as any entry ("Entry '.' ... has an incorrect filetype").
        const want = filetype ? FT.DIR : FT.UNKNOWN
        if (ft !== want) r.add(2, 'DIRENT_BAD_FILETYPE', `directory ${ino} entry '.': file type ${ft}, a directory is type ${want}`, where)
        ctx.refs[ino] = (ctx.refs[ino] ?? 0) + 1
      }
      continue
    }
    if (lblk === 0 && k === 1) {
      if (text !== '..' || child === 0) {
        r.add(2, 'DIR_BAD_DOTDOT', `directory ${ino}: second entry is '${text}', not '..'`, where)
        continue
      }
      if (pad !== 0) r.add(2, 'DIR_DOT_NOT_NUL', `directory ${ino}: '..' is not NUL-terminated`, where)
      dir.dotdot = child
      if (child <= sb.inodesCount && ctx.inodes.get(child)) {
        const want = filetype ? (FT_OF.get(ctx.types[child] ?? 0) ?? FT.UNKNOWN) : FT.UNKNOWN
        if (ft !== want) r.add(2, 'DIRENT_BAD_FILETYPE', `directory ${ino} entry '..': file type ${ft}, inode ${child} is type ${want}`, where)
        ctx.refs[child] = (ctx.refs[child] ?? 0) + 1
      }
      continue
    }
    if (child === 0) continue
    const at = `directory ${ino} entry '${text}'`
    if (nameLen === 0 || text === '.' || text === '..' || name.includes(0x2f) || name.includes(0)) {
      r.add(2, 'DIRENT_BAD_NAME', `${at}: bad name`, where)
      continue
    }
    if ((child < sb.firstIno && child !== ROOT_INO) || child > sb.inodesCount) {
      r.add(2, 'DIRENT_BAD_INODE', `${at}: inode ${child} is reserved or outside 1..${sb.inodesCount}`, where)
      continue
    }
    if (!ctx.inodes.get(child)) {
      r.add(2, 'DIRENT_UNUSED_INODE', `${at}: inode ${child} is not in use`, where)
      continue
    }
    const want = filetype ? (FT_OF.get(ctx.types[child] ?? 0) ?? FT.UNKNOWN) : FT.UNKNOWN
    if (ft !== want) r.add(2, 'DIRENT_BAD_FILETYPE', `${at}: file type ${ft}, inode ${child} is type ${want}`, where)
    ctx.refs[child] = (ctx.refs[child] ?? 0) + 1
    if (child === ROOT_INO) {
      r.add(2, 'DIR_LINK_TO_ROOT', `${at}: a link to the root directory`, where)
      continue
    }
    const sub = ctx.dirs.get(child)
    if (sub !== undefined) {
      if (sub.parent !== 0) r.add(2, 'DIR_HARD_LINK', `${at}: directory ${child} already has an entry in directory ${sub.parent}`, where)
      else sub.parent = ino
    }
    if (ino === ROOT_INO && text === 'lost+found') ctx.lostFound = child
  }
}
