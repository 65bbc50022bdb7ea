/*
 * Pass 2 repair of a damaged htree index, as e2fsck -fy answers "Problem in HTREE directory inode
 * N ... Clear HTree index? yes": the directory becomes linear. Its leaves are already valid linear
 * blocks (the same records and checksum tail); the root becomes a leaf holding '.' and '..' alone,
 * each interior index block an empty leaf, and the inode's INDEX flag is cleared. Every name stays
 * in the block it was in and none depends on the index any more, so a leaf whose checksum failed
 * (a flipped bit in a name may have moved it out of the leaf's hash range) is then judged as any
 * linear leaf: the directory-entries step rewrites its sum if its records pass.
 *
 * e2fsck goes on to rebuild the index (pass 3A); this leaves the directory linear. It reads and
 * serves in full, but the engine then finds a name by scanning its blocks until `e2fsck -fyD`
 * indexes it again. A block that is neither a leaf nor an index block is left to the
 * directory-entries step, which reports it.
 */
import { composeLeaf, setLeafCsum } from '../../dir/dir-block.ts'
import { dirFsOf } from '../../dir/dir-file.ts'
import { FT, recLenFromDisk } from '../../format/dirent.ts'
import { INODE_FLAGS } from '../../format/inode.ts'
import type { DirInfo } from '../context.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'
import { updateInode } from './inode-write.ts'

/** Problems of the index itself (its blocks' checksums included), and a leaf checksum failing in an indexed directory. */
const INDEX_CODES = new Set(['HTREE_CSUM', 'HTREE_BAD_ROOT', 'HTREE_BAD_LIMIT', 'HTREE_BAD_ORDER', 'HTREE_BAD_BLOCK', 'HTREE_BAD_NODE', 'HTREE_UNREFERENCED'])

/** An interior index block: one empty record over the whole block (fake dirent), then dx entries. */
function isIndexNode(buf: Buffer): boolean {
  return buf.readUInt32LE(0) === 0 && (buf[6] ?? 1) === 0 && recLenFromDisk(buf.readUInt16LE(4), buf.length) === buf.length
}

export async function clearHtreeIndexes({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = []
  const dirs = new Map<number, Set<string>>()
  for (const p of problems) {
    if (p.pass !== 2 || p.ino === undefined) continue
    const dir = ctx.dirs.get(p.ino)
    const indexed = dir !== undefined && (dir.flags & INODE_FLAGS.INDEX) !== 0
    if (!INDEX_CODES.has(p.code) && !(p.code === 'DIR_CSUM' && indexed)) continue
    const codes = dirs.get(p.ino) ?? new Set<string>()
    codes.add(p.code)
    dirs.set(p.ino, codes)
  }
  for (const [ino, codes] of dirs) {
    const dir = ctx.dirs.get(ino)
    const where = { ino }
    if (dir === undefined || (dir.flags & INODE_FLAGS.INDEX) === 0) {
      for (const code of codes) out.push(left(2, code, `directory ${ino}: not repaired: not an indexed directory pass 1 could read`, where))
      continue
    }
    const nodes = await linearize(ctx, h, ino, dir)
    if (!(await updateInode(ctx, h, ino, (inode) => { inode.flags &= ~INODE_FLAGS.INDEX }))) {
      for (const code of codes) out.push(left(2, code, `directory ${ino}: not repaired: its inode cannot be placed`, where))
      continue
    }
    out.push(fixed(2, 'HTREE_CLEARED', `directory ${ino}: htree index cleared (${[...codes].sort().join(', ')}); now linear, every leaf kept, ${nodes} index block${nodes === 1 ? '' : 's'} emptied`, where))
  }
  return out
}

/** Rewrite the root as '.' and '..' and every interior index block as an empty leaf; returns how many blocks were emptied. */
async function linearize(ctx: StepInput['ctx'], h: StepInput['h'], ino: number, dir: DirInfo): Promise<number> {
  const fs = dirFsOf(ctx.img.sb)
  let emptied = 0
  for (const [lblk, pblk, n] of dir.extents) {
    for (let i = 0; i < n; i++) {
      const block = pblk + i
      const buf = await h.get(block)
      if (lblk + i === 0) {
        // '..' as the root block names it (offset 12, after '.'), unless pass 2 found the entry naming this directory.
        const dotdot = dir.parent !== 0 ? dir.parent : buf.readUInt32LE(12)
        composeLeaf(buf, fs, [
          { inode: ino, fileType: FT.DIR, name: Buffer.from('.') },
          { inode: dotdot, fileType: FT.DIR, name: Buffer.from('..') },
        ])
      } else if (isIndexNode(buf)) {
        composeLeaf(buf, fs, [])
        emptied++
      } else continue
      setLeafCsum(buf, fs, ino, dir.generation)
      h.dirty(block)
    }
  }
  return emptied
}
