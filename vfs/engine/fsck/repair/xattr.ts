/*
 * Pass 1 repair of extended attribute blocks. A block that is none (bad
 * header or entries) is dropped by the inodes naming it. A wrong h_refcount is set to
 * the number of inodes found naming the block, with the block's checksum, as
 * e2fsck -fy's "Extended attribute block %b has reference count %r, should be
 * %N. Fix? yes"; a block whose checksum alone is wrong gets it rewritten
 * ("extended attribute block passes checks, but checksum does not match
 * block. Fix? yes"). A block also claimed as something else (another file's
 * data, metadata) is left to the clone step first: writing its header would
 * change the other owner's bytes. The copy the clone makes is judged again by
 * the next check.
 *
 * cloneXattrBlock is that clone, for clone.ts: the block is copied to a free
 * block, the copy's checksum set for its own block number, and every inode
 * that named the original is pointed at the copy, so a shared block stays
 * shared (e2fsck's clone_file repoints the other sharers the same way).
 */
import type { MetaTxn } from '../../txn/txn.ts'
import type { FsckContext } from '../context.ts'
import { hasEaInodeFeature } from '../ea-inode.ts'
import { setXattrCsum, XATTR_REFCOUNT_OFFSET } from '../xattr-check.ts'
import { xattrBlockFault } from '../xattr-entries.ts'
import { inodePlace, updateInode } from './inode-write.ts'
import { fixed, left } from './record.ts'
import type { Repair, StepInput } from './record.ts'

/** Is block one that some inode claimed after something else had (pass 1B's list)? */
function multiplyClaimed(ctx: FsckContext, block: number): boolean {
  for (const runs of ctx.dupRuns.values()) if (runs.some(([b, n]) => b <= block && block < b + n)) return true
  return false
}

/** Inodes whose record is not to be rewritten: their checksum or extent tree fails (the record may be what is wrong). */
function distrusted(problems: StepInput['problems']): Map<number, string> {
  const out = new Map<number, string>()
  for (const p of problems) if (p.pass === 1 && p.ino !== undefined && (p.code === 'INODE_CSUM' || p.code.startsWith('EXTENT_'))) out.set(p.ino, p.code)
  return out
}

/** Why the inodes cannot all be rewritten (undefined: they can). */
function unwritable(ctx: FsckContext, users: readonly number[], distrust: ReadonlyMap<number, string>): string | undefined {
  const bad = users.find((ino) => distrust.has(ino))
  if (bad !== undefined) return `inode ${bad} also has ${distrust.get(bad)}`
  const unplaced = users.find((ino) => inodePlace(ctx, ino) === undefined)
  return unplaced === undefined ? undefined : `inode ${unplaced} has its inode table outside the file system`
}

/**
 * A block that is no sound attribute block (or outside the file system): every inode naming it
 * forgets it (i_file_acl 0), as e2fsck -fy's "Inode %i has a bad extended attribute block %b.
 * Clear? yes"; the block itself is not written (it may be another file's data). Their i_blocks
 * and the bitmaps follow in later steps. Not for an inode whose checksum fails too: a flipped
 * i_file_acl is one way to get here, and rewriting the record would bless the rest of it.
 */
async function clearBadBlocks(ctx: FsckContext, h: MetaTxn, problems: StepInput['problems']): Promise<Repair[]> {
  const out: Repair[] = []
  const distrust = distrusted(problems)
  const done = new Set<number>()
  for (const p of problems) {
    if (p.pass !== 1 || p.code !== 'XATTR_BAD_BLOCK' || p.block === undefined || p.ino === undefined) continue
    // A block inside the file system was judged once, for all who name it; one outside, per inode.
    const inside = ctx.xattr.has(p.block)
    if (inside && done.has(p.block)) continue
    done.add(p.block)
    const users = inside ? ctx.xattr.get(p.block)?.users : [p.ino]
    const why = users === undefined ? 'the inodes naming it were not all recorded (too many in the image)' : unwritable(ctx, users, distrust)
    if (users === undefined || why !== undefined) {
      out.push(left(1, 'XATTR_BAD_BLOCK', `${p.message} (not cleared: ${why})`, { block: p.block, ino: p.ino }))
      continue
    }
    for (const ino of users) await updateInode(ctx, h, ino, (inode) => void (inode.fileAcl = 0))
    out.push(fixed(1, 'XATTR_BLOCK_CLEARED', `inode${users.length > 1 ? 's' : ''} ${users.join(' ')}: bad extended attribute block ${p.block} cleared`, { block: p.block, ino: p.ino }))
  }
  return out
}

export async function repairXattrBlocks({ ctx, problems, h }: StepInput): Promise<Repair[]> {
  const out: Repair[] = await clearBadBlocks(ctx, h, problems)
  // Per block: the h_refcount to write (undefined: only the checksum), and the problem it answers.
  const todo = new Map<number, { refcount: number | undefined; code: string; message: string; ino?: number }>()
  for (const p of problems) {
    if (p.pass !== 1 || p.block === undefined) continue
    if (p.code === 'XATTR_REFCOUNT' && p.expected !== undefined) todo.set(p.block, { refcount: p.expected, code: p.code, message: p.message })
    else if (p.code === 'XATTR_CSUM' && !todo.has(p.block)) todo.set(p.block, { refcount: undefined, code: p.code, message: p.message, ...(p.ino === undefined ? {} : { ino: p.ino }) })
  }
  for (const [block, t] of todo) {
    const where = { block, ...(t.ino === undefined ? {} : { ino: t.ino }) }
    if (multiplyClaimed(ctx, block)) {
      out.push(left(1, t.code, `${t.message} (not rewritten: the block is multiply claimed; the clone step copies it first)`, where))
      continue
    }
    const buf = await h.get(block)
    const fault = xattrBlockFault(buf, hasEaInodeFeature(ctx))
    if (fault !== undefined) {
      out.push(left(1, t.code, `${t.message} (not rewritten: ${fault})`, where))
      continue
    }
    const was = buf.readUInt32LE(XATTR_REFCOUNT_OFFSET)
    if (t.refcount !== undefined) buf.writeUInt32LE(t.refcount, XATTR_REFCOUNT_OFFSET)
    setXattrCsum(ctx, block, buf)
    h.dirty(block)
    out.push(t.refcount === undefined
      ? fixed(1, 'XATTR_CSUM_SET', `extended attribute block ${block}: checksum rewritten (the block passes checks)`, where)
      : fixed(1, 'XATTR_REFCOUNT_SET', `extended attribute block ${block}: reference count ${was} set to ${t.refcount}`, where))
  }
  return out
}

/** Why block cannot be cloned by cloneXattrBlock (undefined: it can): every inode naming it is rewritten. */
export function xattrCloneRefusal(ctx: FsckContext, block: number, problems: StepInput['problems']): string | undefined {
  const use = ctx.xattr.get(block)
  if (use?.stated === undefined) return `shared block ${block} is neither in its extents' data nor its extent tree, and no extended attribute block`
  if (use.users === undefined) return `the inodes naming extended attribute block ${block} were not all recorded (too many in the image)`
  const why = unwritable(ctx, use.users, distrusted(problems))
  return why === undefined ? undefined : `extended attribute block ${block} is named by inodes not to be rewritten: ${why}`
}

/**
 * Copy extended attribute block `block` to `to` (free, already marked in the check's map) and
 * point every inode naming it there; xattrCloneRefusal said it can be. The inodes repointed.
 */
export async function cloneXattrBlock(ctx: FsckContext, h: MetaTxn, block: number, to: number): Promise<number[]> {
  const users = ctx.xattr.get(block)?.users ?? []
  const copy = h.fresh(to)
  ;(await ctx.img.readBlocks(block, 1, `extended attribute block ${block}`)).copy(copy)
  setXattrCsum(ctx, to, copy)
  for (const ino of users) await updateInode(ctx, h, ino, (inode) => void (inode.fileAcl = to))
  return users
}
