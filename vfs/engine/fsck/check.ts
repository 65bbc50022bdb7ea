/*
 * checkImage: e2fsck's five passes, read only, over the engine's reader.
 * The image is opened without checksum verification so that a bad sum is a
 * problem in the report, not the end of the walk; each pass verifies what it
 * reads itself. What cannot be checked at all (not ext4, a geometry that
 * describes no file system, a feature we do not read) throws the reader's
 * FormatError, which the CLI turns into an operational error.
 */
import { FormatError } from '../format/errors.ts'
import { hasFeature } from '../format/features.ts'
import { BG_BLOCK_UNINIT } from '../format/group-desc.ts'
import { metadataCsumVerifier, hasMetadataCsum } from '../reader/csum-verifier.ts'
import { Ext4Image } from '../reader/image.ts'
import type { ReadAt } from '../reader/read-at.ts'
import { NO_VERIFY } from '../reader/verify.ts'
import { FsckContext } from './context.ts'
import { checkJournal } from './journal-check.ts'
import { readOrphans } from './orphans.ts'
import { scanInodes } from './pass1-inodes.ts'
import { checkGroupDescs, checkSuperblock } from './pass1-super.ts'
import { checkDirectories } from './pass2-dirs.ts'
import { checkConnectivity } from './pass3-connect.ts'
import { checkLinkCounts } from './pass4-links.ts'
import { checkBitmaps } from './pass5-bitmaps.ts'
import { Reporter } from './problems.ts'
import { checkXattrBlocks } from './xattr-check.ts'
import type { FsckResult } from './problems.ts'

export interface CheckOptions {
  /** Problems kept in the result (default MAX_PROBLEMS); more are counted in dropped. */
  maxProblems?: number
}

/** Groups checked at most: 2^20 groups of 32768 4 KiB blocks is 128 TiB; the descriptors alone are then 64 MiB. */
export const MAX_GROUPS = 1 << 20

/**
 * What the maps are sized by, checked before they are allocated: the group
 * count, and an inode count whose tables (with the bitmaps) fit in the file
 * system, so a corrupt superblock cannot ask for more memory than the image
 * is large.
 */
function checkSizes(img: Ext4Image): void {
  if (img.groupCount > MAX_GROUPS) throw new FormatError('EXT4_TOO_LARGE', `${img.groupCount} block groups (fsck checks at most ${MAX_GROUPS})`)
  const tableBlocks = Math.ceil((img.sb.inodesPerGroup * img.inodeSize) / img.blockSize)
  const need = img.groupCount * (tableBlocks + 2)
  if (need > img.blocksCount) {
    throw new FormatError('EXT4_BAD_GEOMETRY', `${img.groupCount} groups of ${img.sb.inodesPerGroup} inodes need ${need} blocks of inode tables and bitmaps, the file system has ${img.blocksCount}`)
  }
}

export async function checkImage(dev: ReadAt, opts: CheckOptions = {}): Promise<FsckResult> {
  return (await checkWithContext(dev, opts)).result
}

/** The check, and the maps it computed (undefined when the journal needs recovery and nothing was walked): what repair/ builds on. */
export async function checkWithContext(dev: ReadAt, opts: CheckOptions = {}): Promise<{ result: FsckResult; ctx: FsckContext | undefined }> {
  const report = new Reporter(opts.maxProblems)
  let img: Ext4Image
  try {
    img = await Ext4Image.open(dev, { verifier: NO_VERIFY })
  } catch (err) {
    // e2fsck -n skips journal replay, then judges a file system that replay would change: we refuse, and say so.
    if (err instanceof FormatError && err.code === 'EXT4_NEEDS_RECOVERY') {
      report.add(1, 'NEEDS_RECOVERY', 'the journal holds transactions not yet replayed (needs_recovery): not checked; replay it first (mount the image, or e2fsck -p)')
      return { result: report.result(), ctx: undefined }
    }
    throw err
  }
  if (hasFeature(img.sb, 'ro_compat', 'bigalloc')) throw new FormatError('EXT4_UNSUPPORTED_FEATURE', 'unsupported feature: bigalloc (clusters are not checked)')
  checkSizes(img)
  const csum = hasMetadataCsum(img.sb)
  const ctx = new FsckContext(img, report, csum ? metadataCsumVerifier(img.sb) : NO_VERIFY, csum)
  await checkSuperblock(ctx)
  // e2fsck checks the journal before pass 1 and, when it is unusable, stops ("Cannot proceed"); we go on, so a report says what else is wrong.
  ctx.journal = await checkJournal(img, report)
  await checkGroupDescs(ctx)
  if (ctx.groups.some((gd) => (gd.flags & BG_BLOCK_UNINIT) !== 0)) ctx.metaBlocks = ctx.blocks.clone()
  await readOrphans(ctx)
  await scanInodes(ctx)
  await checkXattrBlocks(ctx)
  await checkDirectories(ctx)
  checkConnectivity(ctx)
  checkLinkCounts(ctx)
  await checkBitmaps(ctx)
  return { result: report.result(), ctx }
}
