/*
 * repairImage: e2fsck -fy's order over an image nobody serves (the caller
 * holds the engine's lock): replay the journal if it needs it, finish the
 * orphan list, check, then one repair step per problem class in pass order,
 * checking again after each step that wrote, since each step's writes change
 * what the later passes count. Writes go in place (DirectTxnManager, as
 * e2fsck writes), each step's blocks written and flushed when it ends. The
 * last check decides the outcome, with e2fsck's exit codes: 0 clean and
 * nothing written, 1 errors corrected, 4 errors left uncorrected.
 */
import type { BlockDevice } from '../../blockdev/block-device.ts'
import { FormatError } from '../../format/errors.ts'
import { unsupportedFeatures } from '../../format/features.ts'
import { decodeSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../../format/superblock.ts'
import { needsRecovery } from '../../jbd2/needs-recovery.ts'
import { recover } from '../../jbd2/recovery.ts'
import { DirectTxnManager } from '../../txn/direct-txn.ts'
import { checkWithContext } from '../check.ts'
import type { CheckOptions } from '../check.ts'
import { FLAG_FIXES } from '../inode-flags.ts'
import type { FsckResult } from '../problems.ts'
import { repairBitmaps } from './bitmaps.ts'
import { repairChecksums } from './checksums.ts'
import { cloneShared } from './clone.ts'
import { repairDirEntries } from './dirents.ts'
import { repairEaInodeCounts, repairEaInodeEntries } from './ea-inode.ts'
import { clearHtreeIndexes } from './htree-clear.ts'
import { repairCountedFields, repairDtimes } from './inode-fields.ts'
import { repairInodeFlags } from './inode-flags.ts'
import { repairJournal } from './journal.ts'
import { repairLinkCounts } from './links.ts'
import { releaseOrphans } from './orphans.ts'
import { reconnect } from './reconnect.ts'
import { repairResizeInode } from './resize.ts'
import { restoreSuperblock, rewriteSuperblockCsum } from './superblock.ts'
import type { Repair, RepairStep } from './record.ts'
import { repairXattrBlocks } from './xattr.ts'

export const EXIT_CLEAN = 0
export const EXIT_CORRECTED = 1
export const EXIT_LEFT = 4

export interface RepairResult {
  /** What journal replay did, when the image needed it. */
  recovery?: string
  /** Each repair made ('fixed') and each problem a step saw and would not touch ('left'), in order. */
  repairs: Repair[]
  /** The first full check (after replay and the orphan list). */
  before: FsckResult
  /** The last check: what is left. */
  after: FsckResult
  exitCode: typeof EXIT_CLEAN | typeof EXIT_CORRECTED | typeof EXIT_LEFT
}

/** In pass order; each sees the problems of the check before it. */
const STEPS: ReadonlyArray<[string, RepairStep]> = [
  ['checksums', repairChecksums],
  ['extended attribute blocks', repairXattrBlocks],
  ['extended attribute values in inodes', repairEaInodeEntries],
  ['resize inode', repairResizeInode],
  ['deletion times', repairDtimes],
  ['inode flags', repairInodeFlags],
  ['counted fields', repairCountedFields],
  ['multiply-claimed blocks', cloneShared],
  ['htree indexes', clearHtreeIndexes],
  ['directory entries', repairDirEntries],
  ['lost+found', reconnect],
  ['value inode counts', repairEaInodeCounts],
  ['link counts', repairLinkCounts],
  ['bitmaps and counts', repairBitmaps],
]
/** Sweeps over STEPS at most: a sweep that fixes something may uncover more (a truncated problem list). */
const MAX_SWEEPS = 3

/** Errors, or notes e2fsck -n lets pass that -y answers all the same (inode-flags.ts). */
function owesWork(result: FsckResult): boolean {
  return !result.clean || result.problems.some((p) => p.severity === 'note' && FLAG_FIXES.has(p.code))
}

/** Open errors of a primary superblock that a backup may answer. */
const SUPERBLOCK_DAMAGE = new Set(['EXT4_BAD_MAGIC', 'EXT4_BAD_BLOCK_SIZE', 'EXT4_BAD_GEOMETRY', 'EXT4_CORRUPT', 'EXT4_BAD_CHECKSUM'])

/** The first check; a primary superblock that fails (its checksum, its fields, or the open itself) is rebuilt from a backup first. */
async function firstCheck(dev: BlockDevice, opts: CheckOptions, repairs: Repair[]): Promise<Awaited<ReturnType<typeof checkWithContext>>> {
  let why: string
  try {
    const first = await checkWithContext(dev, opts)
    const bad = first.result.problems.filter((p) => p.code === 'SUPERBLOCK_CSUM' || p.code === 'SUPERBLOCK_BAD_FIELD')
    if (bad.length === 0) return first
    why = bad.map((p) => p.code).join(', ')
  } catch (err) {
    if (!(err instanceof FormatError) || !SUPERBLOCK_DAMAGE.has(err.code)) throw err
    why = err.code
    const { repair, refused } = await restoreSuperblock(dev, why)
    // No copy with a magic anywhere: not ext4 at all, so the open's own error says it best.
    if (repair.outcome === 'left' && refused === 0) throw err
    // Backups there, none sound: say why they were refused too.
    if (repair.outcome === 'left') throw new FormatError(err.code, `${err.message}; ${repair.message}`)
    repairs.push(repair)
    return checkWithContext(dev, opts)
  }
  const restored = (await restoreSuperblock(dev, why)).repair
  // Only the sum wrong and no sound backup: the primary's fields are sane and the newest there are, so its sum is rewritten.
  if (restored.outcome === 'left' && why === 'SUPERBLOCK_CSUM') repairs.push(await rewriteSuperblockCsum(dev, restored.message))
  else repairs.push(restored)
  return checkWithContext(dev, opts)
}

export async function repairImage(dev: BlockDevice, opts: CheckOptions = {}): Promise<RepairResult> {
  const repairs: Repair[] = []
  // Not ext4 (no sound backup either), or geometry nothing can be checked against: the check throws before anything is written.
  let { result, ctx } = await firstCheck(dev, opts, repairs)
  const sb = decodeSuperblock(await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE))
  // ea_inode is the one feature the engine does not write that the repair does: its values' inodes
  // are checked and repaired here (ea-inode.ts) as e2fsck -fy does.
  const unsupported = unsupportedFeatures(sb).filter((n) => n !== 'ea_inode')
  if (unsupported.length > 0) throw new FormatError('EXT4_UNSUPPORTED_FEATURE', `cannot repair an image with ${unsupported.join(' ')} (the engine does not write it)`)
  let recovery: string | undefined
  if (ctx === undefined && (await needsRecovery(dev))) {
    const r = await recover(dev)
    recovery = `journal replayed: ${r.transactions} transactions, ${r.replayed} blocks${r.failedCommit === undefined ? '' : `, transaction ${r.failedCommit} incomplete and dropped`}`
    ;({ result, ctx } = await checkWithContext(dev, opts))
  }
  // A step's refusals are those of its last run: an earlier one may have been answered since.
  const refused = new Map<string, Repair[]>()
  const record = (name: string, done: Repair[]): void => {
    repairs.push(...done.filter((r) => r.outcome === 'fixed'))
    refused.set(name, done.filter((r) => r.outcome === 'left'))
  }
  record('orphans', await releaseOrphans(dev))
  if (repairs.length > 0) ({ result, ctx } = await checkWithContext(dev, opts))
  const before = result
  // The journal before the passes' steps, as e2fsck checks it before pass 1.
  if (ctx !== undefined) {
    const done = await repairJournal(dev, ctx, result.problems)
    record('journal', done)
    if (done.some((r) => r.outcome === 'fixed')) ({ result, ctx } = await checkWithContext(dev, opts))
  }
  for (let sweep = 0; sweep < MAX_SWEEPS && owesWork(result) && ctx !== undefined; sweep++) {
    let fixedAny = false
    for (const [name, step] of STEPS) {
      if (!owesWork(result) || ctx === undefined) break
      const txm = new DirectTxnManager(dev, ctx.img.blockSize)
      const h = await txm.begin()
      let done: Repair[]
      try {
        done = await step({ ctx, problems: result.problems, h })
      } finally {
        txm.end(h)
      }
      await txm.close()
      record(name, done)
      if (done.some((r) => r.outcome === 'fixed')) {
        fixedAny = true
        ;({ result, ctx } = await checkWithContext(dev, opts))
      }
    }
    if (!fixedAny) break
  }
  if ((refused.get('orphans') ?? []).length > 0 && result.clean) {
    // A list the engine could not finish over damaged metadata may go once the rest is repaired.
    record('orphans', await releaseOrphans(dev))
    if (!refused.get('orphans')?.length) ({ result } = await checkWithContext(dev, opts))
  }
  // A refusal stands only while the last check still finds what it refused (the orphan list has no problem code: it stands).
  const stands = (r: Repair): boolean => r.code === 'ORPHANS_LEFT' || result.problems.some((p) => p.code === r.code && (r.ino === undefined || p.ino === r.ino))
  repairs.push(...[...refused.values()].flat().filter(stands))
  const wrote = recovery !== undefined || repairs.some((r) => r.outcome === 'fixed')
  const orphansLeft = (refused.get('orphans') ?? []).length > 0
  const exitCode = !result.clean || orphansLeft ? EXIT_LEFT : wrote ? EXIT_CORRECTED : EXIT_CLEAN
  return { ...(recovery === undefined ? {} : { recovery }), repairs, before, after: result, exitCode }
}
