/*
 * A corrupt journal superblock rewritten, as e2fsck -fy's e2fsck_journal_reset_super does ("Journal
 * superblock is corrupt. Fix? yes"): a v2 superblock with no features, s_maxlen the journal inode's
 * length, s_first 1, an empty log (s_start 0) and a random s_sequence, so no stale block in the log
 * can pass for a transaction. The same answers an s_start set without needs_recovery (e2fsck's
 * "Clear journal", which drops the log instead of replaying what nobody asked to replay) and an
 * s_errno left by the kernel (the rest of the check has judged the file system by then).
 *
 * One difference: for a superblock without the magic e2fsck -fy deletes the journal inode and makes
 * a new journal; the inode here has passed its own checks, so its superblock is rewritten in place.
 * A journal inode that fails them, an external journal, or a journal the superblock flags disown
 * are refused, naming the problem: e2fsck -fy (or tune2fs -O ^has_journal, then -O has_journal)
 * rebuilds those.
 */
import { randomInt } from 'node:crypto'
import type { BlockDevice } from '../../blockdev/block-device.ts'
import { encodeJournalSuperblock, JBD2_SUPERBLOCK_V2 } from '../../jbd2/superblock.ts'
import type { FsckContext } from '../context.ts'
import { JOURNAL_SUPER_CODES } from '../journal-check.ts'
import type { Problem } from '../problems.ts'
import { fixed, left } from './record.ts'
import type { Repair } from './record.ts'

/** Problems a fresh journal superblock answers. */
const RESET_CODES = new Set([...JOURNAL_SUPER_CODES, 'JOURNAL_START_WITHOUT_RECOVERY', 'JOURNAL_ERRNO_SET'])
/** Journal problems repair does not touch. */
const REFUSED: ReadonlyMap<string, string> = new Map([
  ['JOURNAL_BAD_INODE', 'the journal inode is unusable'],
  ['JOURNAL_EXTERNAL', 'the journal is external'],
  ['JOURNAL_HAS_JOURNAL_CLEAR', 'has_journal is clear but a journal inode is set'],
  ['JOURNAL_INODE_NOT_CLEAR', 'inode 8 holds data but is not the journal'],
])
const HOW = 'not repaired: e2fsck -fy removes and recreates the journal (or tune2fs -O ^has_journal, then -O has_journal)'

export async function repairJournal(dev: BlockDevice, ctx: FsckContext, problems: readonly Problem[]): Promise<Repair[]> {
  const out: Repair[] = []
  for (const p of problems) {
    const why = REFUSED.get(p.code)
    if (why !== undefined) out.push(left(1, p.code, `${why}: ${HOW}`, p.ino === undefined ? {} : { ino: p.ino }))
  }
  const reset = problems.filter((p) => RESET_CODES.has(p.code))
  const facts = ctx.journal
  if (reset.length === 0 || facts === undefined) return out
  const bs = ctx.img.blockSize
  const block = Buffer.alloc(bs)
  encodeJournalSuperblock({
    blockType: JBD2_SUPERBLOCK_V2,
    headerSequence: 0,
    blockSize: bs,
    maxlen: facts.blocks,
    first: 1,
    sequence: randomInt(1, 2 ** 31),
    start: 0,
    errno: 0,
    featureCompat: 0,
    featureIncompat: 0,
    featureRoCompat: 0,
    uuid: Buffer.from(ctx.img.sb.uuid),
    nrUsers: 1,
    dynsuper: 0,
    maxTransaction: 0,
    maxTransData: 0,
    checksumType: 0,
    numFcBlks: 0,
    head: 0,
    checksum: 0,
    users: Buffer.alloc(0x300),
  }).copy(block)
  await dev.write(facts.superBlock * bs, block)
  await dev.flush()
  for (const p of reset) out.push(fixed(1, p.code, `journal superblock rewritten (empty v2 log of ${facts.blocks} blocks): ${p.message}`, { block: facts.superBlock }))
  return out
}
