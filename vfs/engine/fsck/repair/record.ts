/*
 * What a repair step did or refused, in the words e2fsck -fy would use: each
 * record names the pass and the problem code it answers, so the CLI prints
 * them and tests compare codes. A 'left' record is a problem the step saw and
 * would not touch (the reason is in its message); it makes the exit 4.
 */
import type { FsckPass } from '../problems.ts'
import type { FsckContext } from '../context.ts'
import type { Problem } from '../problems.ts'
import type { MetaTxn } from '../../txn/txn.ts'

export interface Repair {
  pass: FsckPass
  code: string
  message: string
  ino?: number
  block?: number
  /** fixed: written; left: seen and not repaired (why in message). */
  outcome: 'fixed' | 'left'
}

/** What a step gets: the check's maps and problems, and a handle whose changed blocks are written when it ends. */
export interface StepInput {
  ctx: FsckContext
  problems: readonly Problem[]
  h: MetaTxn
}

export type RepairStep = (input: StepInput) => Promise<Repair[]>

export function fixed(pass: FsckPass, code: string, message: string, where: { ino?: number; block?: number } = {}): Repair {
  return { pass, code, message, ...where, outcome: 'fixed' }
}

export function left(pass: FsckPass, code: string, message: string, where: { ino?: number; block?: number } = {}): Repair {
  return { pass, code, message, ...where, outcome: 'left' }
}

/** Pass-1 problems after which every block and inode in use is still claimed in the maps: with only these, pass 5 may rewrite the bitmaps from the maps. */
export const MAP_NEUTRAL = new Set(['INODE_CSUM', 'EXTENT_CSUM', 'GROUP_DESC_CSUM', 'INODE_ZERO_DTIME', 'INODE_DTIME_SET', 'INODE_BAD_I_BLOCKS', 'INODE_BAD_SIZE', 'XATTR_REFCOUNT', 'XATTR_CSUM',
  // Flags that change no claim (inode-flags.ts claims a file missing EXTENTS_FL by its extents already).
  'INODE_IMAGIC_FL', 'INODE_CASEFOLD_FL', 'INODE_ENCRYPT_NO_XATTR', 'INODE_SPECIAL_IMMUTABLE', 'INODE_HTREE_FL', 'INODE_MISSING_EXTENTS_FL'])
