/*
 * Journal recovery, with jbd2's rules (kernel fs/jbd2/recovery.c, e2fsck/recovery.c; read, then
 * written anew). Three passes, as there:
 *
 * 1. scan from s_start expecting tid s_sequence: each log block must carry the magic and the
 *    expected tid, or the log ends there. A descriptor's tags say how many journaled blocks follow
 *    it; a commit block closes its transaction and the next tid is expected. The position wraps
 *    from s_maxlen back to s_first. A transaction without its commit block is not replayed.
 *    With csum v3: a commit block whose checksum fails ends the log and drops its transaction
 *    (unless its time is older than the last good commit: then it is a stale block of an older
 *    log, and the log simply ends). A descriptor or revoke block whose tail checksum fails is
 *    judged by the commit that follows: an older commit time means stale (end quietly), a newer
 *    one means damage inside a committed transaction (JBD2_BAD_CHECKSUM, nothing written).
 * 2. revoke: every revoke record of a committed transaction maps block -> the newest tid that
 *    revoked it.
 * 3. replay: each journaled block of tid T goes home unless revoked by a tid >= T; a block whose
 *    tag checksum fails is skipped and reported (as jbd2 does), the rest of its transaction still
 *    goes home.
 * Then flush, empty the log (s_start = 0, s_sequence = the tid after the last one scanned + 1, as
 * jbd2 and e2fsck do so that no old commit block can match again), flush, and clear the file
 * system's needs_recovery. A crash anywhere in this leaves a journal that recovers again the same.
 * A log whose file system does not say needs_recovery is emptied without replay, as ext4 does.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import { Jbd2Error } from './errors.ts'
import { openJournal, writeJournalSuperblock } from './journal-open.ts'
import type { OpenedJournal } from './journal-open.ts'
import { decodeCommit, decodeDescriptor, decodeRevoke, JBD2_FLAG_ESCAPE, readLogHeader, tagCsum, tailCsumOk } from './log-blocks.ts'
import type { BlockTag } from './log-blocks.ts'
import { needsRecovery, setNeedsRecovery } from './needs-recovery.ts'
import { JBD2_COMMIT_BLOCK, JBD2_DESCRIPTOR_BLOCK, JBD2_MAGIC_NUMBER, JBD2_REVOKE_BLOCK } from './superblock.ts'

export interface ScannedDescriptor {
  /** Log block of the descriptor. */
  at: number
  tags: BlockTag[]
  /** Log block of the first journaled block (the one after the descriptor, wrapped). */
  first: number
}

export interface ScannedTransaction {
  tid: number
  descriptors: ScannedDescriptor[]
  /** Log blocks of its revoke blocks. */
  revokeBlocks: number[]
  /** Log block of its commit block. */
  commitAt: number
  commitSec: number
}

export interface LogScan {
  /** Committed transactions, oldest first. */
  transactions: ScannedTransaction[]
  /** The first tid not replayed. */
  endTid: number
  /** A tid dropped because its commit block failed its checksum. */
  failedCommit: number | undefined
  /** Log block after the last committed transaction. */
  head: number
}

/** Pass 1 over an opened journal with s_start != 0. Reads only. */
export async function scanLog(dev: BlockDevice, j: OpenedJournal): Promise<LogScan> {
  const { jsb, fmt, map } = j
  const bs = map.blockSize
  const wrap = (b: number): number => (b >= jsb.maxlen ? b - (jsb.maxlen - jsb.first) : b)
  const readLog = (b: number): Promise<Buffer> => dev.read(map.phys(b) * bs, bs)
  const transactions: ScannedTransaction[] = []
  let next = jsb.start
  let tid = jsb.sequence
  let head = next
  let lastCommit = 0
  let needCheck = false
  let failedCommit: number | undefined
  let cur: ScannedTransaction = { tid, descriptors: [], revokeBlocks: [], commitAt: 0, commitSec: 0 }
  // A valid log never holds more blocks than the journal; past that the bytes are lying.
  let budget = jsb.maxlen - jsb.first
  for (;;) {
    if (budget-- <= 0) break
    const at = next
    const buf = await readLog(at)
    next = wrap(next + 1)
    const h = readLogHeader(buf)
    if (h === undefined || h.sequence !== tid) break
    if (h.blockType === JBD2_DESCRIPTOR_BLOCK) {
      if (!tailCsumOk(fmt, buf)) needCheck = true
      const tags = decodeDescriptor(fmt, buf)
      cur.descriptors.push({ at, tags, first: next })
      budget -= tags.length
      next = wrap(next + tags.length)
    } else if (h.blockType === JBD2_REVOKE_BLOCK) {
      if (!tailCsumOk(fmt, buf)) needCheck = true
      cur.revokeBlocks.push(at)
    } else if (h.blockType === JBD2_COMMIT_BLOCK) {
      const c = decodeCommit(fmt, buf)
      if (needCheck) {
        if (c.sec >= lastCommit) throw new Jbd2Error('JBD2_BAD_CHECKSUM', `transaction ${tid}: a descriptor or revoke block fails its checksum, and its commit block (log block ${at}) is not older than the last`)
        break
      }
      if (!c.checksumOk) {
        if (c.sec >= lastCommit) failedCommit = tid
        break
      }
      lastCommit = c.sec
      cur.commitAt = at
      cur.commitSec = c.sec
      transactions.push(cur)
      tid = (tid + 1) >>> 0
      head = next
      cur = { tid, descriptors: [], revokeBlocks: [], commitAt: 0, commitSec: 0 }
    } else {
      break
    }
  }
  return { transactions, endTid: tid, failedCommit, head }
}

export interface RecoveryResult {
  /** The log was empty: nothing replayed (needs_recovery cleared if it was set). */
  clean: boolean
  transactions: number
  /** Journaled blocks written home. */
  replayed: number
  /** Journaled blocks skipped because a later-or-same transaction revoked them. */
  revokeHits: number
  /** Revoke records read. */
  revokes: number
  /** Home block numbers whose logged copy failed its tag checksum (not written). */
  badBlocks: number[]
  failedCommit: number | undefined
  /** s_sequence of the emptied journal: the tid the next transaction uses. */
  nextTid: number
  /**
   * Committed transactions thrown away unreplayed: the log held some but the file system did not
   * say needs_recovery. ext4 wipes such a log at mount (jbd2_journal_wipe) rather than trusting
   * it, and e2fsck offers to clear it; so do we.
   */
  discarded: number
}

/** Replay the journal of the file system on dev and leave it clean. */
export async function recover(dev: BlockDevice): Promise<RecoveryResult> {
  const j = await openJournal(dev)
  const { jsb, fmt, map } = j
  const bs = map.blockSize
  if (jsb.start === 0) {
    await setNeedsRecovery(dev, false)
    await dev.flush()
    return { ...nothing(), clean: true, nextTid: jsb.sequence }
  }
  const scan = await scanLog(dev, j)
  if (!(await needsRecovery(dev))) {
    const nextTid = (scan.endTid + 1) >>> 0
    await writeJournalSuperblock(dev, j, { ...jsb, start: 0, sequence: nextTid })
    await dev.flush()
    return { ...nothing(), clean: true, nextTid, discarded: scan.transactions.length }
  }
  const readLog = (b: number): Promise<Buffer> => dev.read(map.phys(b) * bs, bs)
  const wrap = (b: number): number => (b >= jsb.maxlen ? b - (jsb.maxlen - jsb.first) : b)

  // Everything that could stop replay half-way is checked before the first write.
  const revoked = new Map<number, number>()
  let revokes = 0
  for (const t of scan.transactions) {
    for (const d of t.descriptors) {
      for (const tag of d.tags) {
        if (tag.block >= map.fsBlocks) throw new Jbd2Error('JBD2_CORRUPT', `transaction ${t.tid}: descriptor at log block ${d.at} sends a block to ${tag.block}, outside the file system (${map.fsBlocks} blocks)`)
      }
    }
    for (const at of t.revokeBlocks) {
      for (const b of decodeRevoke(fmt, await readLog(at), `transaction ${t.tid} log block ${at}`)) {
        revokes++
        const had = revoked.get(b)
        if (had === undefined || tidAfter(t.tid, had)) revoked.set(b, t.tid)
      }
    }
  }

  let replayed = 0
  let revokeHits = 0
  const badBlocks: number[] = []
  for (const t of scan.transactions) {
    for (const d of t.descriptors) {
      let at = d.first
      for (const tag of d.tags) {
        const logAt = at
        at = wrap(at + 1)
        const by = revoked.get(tag.block)
        if (by !== undefined && !tidAfter(t.tid, by)) {
          revokeHits++
          continue
        }
        const data = await readLog(logAt)
        if (fmt.csum && tagCsum(fmt, t.tid, data) !== tag.checksum >>> 0) {
          badBlocks.push(tag.block)
          continue
        }
        if ((tag.flags & JBD2_FLAG_ESCAPE) !== 0) data.writeUInt32BE(JBD2_MAGIC_NUMBER, 0)
        await dev.write(tag.block * bs, data)
        replayed++
      }
    }
  }
  await dev.flush()

  const nextTid = (scan.endTid + 1) >>> 0
  await writeJournalSuperblock(dev, j, { ...jsb, start: 0, sequence: nextTid })
  await dev.flush()
  await setNeedsRecovery(dev, false)
  await dev.flush()
  return { clean: false, transactions: scan.transactions.length, replayed, revokeHits, revokes, badBlocks, failedCommit: scan.failedCommit, nextTid, discarded: 0 }
}

/** A result that replayed nothing (a fresh object: callers may keep it). */
function nothing(): RecoveryResult {
  return { clean: true, transactions: 0, replayed: 0, revokeHits: 0, revokes: 0, badBlocks: [], failedCommit: undefined, nextTid: 0, discarded: 0 }
}

/** tid_gt: a is after b in the wrapping 32-bit tid space. */
export function tidAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0
}
