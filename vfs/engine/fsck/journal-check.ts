/*
 * The journal check e2fsck runs before pass 1 (e2fsck/journal.c: e2fsck_check_ext3_journal,
 * e2fsck_get_journal, e2fsck_journal_load): the superblock's journal fields, the journal inode
 * (in use, regular, at least JBD2_MIN_JOURNAL_BLOCKS long, every block it maps inside the file
 * system and covering i_size), then the jbd2 superblock in its first block (journal.rst "Super
 * Block"). Each failure is one problem with an exact code; nothing throws for a damaged journal.
 *
 * Where e2fsck 1.47.0 -fn disagrees with the kernel's own rules it is followed, since the verdict
 * must be the same (each case below was tried on it): a v1 superblock's v2 fields are cleared
 * silently and so never judged; an s_maxlen below the inode's length is accepted (the journal is
 * taken as that long, even 0); s_first is not looked at while the log is empty; a journal inode
 * the superblock's backup (s_jnl_blocks) would describe is still refused (the backup copy carries
 * no EXTENTS_FL, so on an extent-mapped journal it maps nothing).
 */
import { decodeExtentNode } from '../format/extent.ts'
import type { ExtentNode } from '../format/extent.ts'
import { hasFeature } from '../format/features.ts'
import { fileType, I_BLOCK_SIZE, INODE_FLAGS, S_IFREG } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import {
  JBD2_COMMIT_BLOCK, JBD2_CRC32C_CHKSUM, JBD2_DESCRIPTOR_BLOCK, JBD2_FEATURE_COMPAT_CHECKSUM, JBD2_FEATURE_INCOMPAT_64BIT,
  JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT, JBD2_FEATURE_INCOMPAT_CSUM_V2, JBD2_FEATURE_INCOMPAT_CSUM_V3, JBD2_FEATURE_INCOMPAT_FAST_COMMIT,
  JBD2_FEATURE_INCOMPAT_REVOKE, JBD2_MAGIC_NUMBER, JBD2_MIN_JOURNAL_BLOCKS, JBD2_REVOKE_BLOCK, JBD2_SUPERBLOCK_V1, JBD2_SUPERBLOCK_V2,
  JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET, journalSuperblockCsum,
} from '../jbd2/superblock.ts'
import type { Ext4Image } from '../reader/image.ts'
import { errText } from './problems.ts'
import type { Reporter } from './problems.ts'

/** What e2fsck knows (kernel-jbd.h JBD2_KNOWN_INCOMPAT_FEATURES); JBD2_KNOWN_ROCOMPAT_FEATURES is 0. */
const KNOWN_INCOMPAT = JBD2_FEATURE_INCOMPAT_REVOKE | JBD2_FEATURE_INCOMPAT_64BIT | JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT
  | JBD2_FEATURE_INCOMPAT_CSUM_V2 | JBD2_FEATURE_INCOMPAT_CSUM_V3 | JBD2_FEATURE_INCOMPAT_FAST_COMMIT
/** jbd2_journal_get_num_fc_blks: s_num_fc_blks, or this when it is 0. */
const JBD2_DEFAULT_FAST_COMMIT_BLOCKS = 256

/** What the check learnt, for repair: where the journal's superblock lives and how long the inode says the journal is. */
export interface JournalFacts {
  /** The file-system block holding journal block 0. */
  superBlock: number
  /** Journal blocks by i_size (what a rewritten superblock's s_maxlen is). */
  blocks: number
  /** The jbd2 superblock's own fields are the problem (a fresh superblock answers it). */
  superDamaged: boolean
}

export const JOURNAL_SUPER_CODES = new Set([
  'JOURNAL_BAD_MAGIC', 'JOURNAL_BAD_SUPER', 'JOURNAL_UNSUPPORTED_VERSION', 'JOURNAL_MULTIPLE_USERS', 'JOURNAL_UNKNOWN_FEATURE',
  'JOURNAL_BAD_CSUM', 'JOURNAL_BAD_BLOCK_SIZE', 'JOURNAL_TOO_SHORT', 'JOURNAL_BAD_FC_BLOCKS',
])

function isNullUuid(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false
  return true
}

/**
 * Check the internal journal; problems go to report (pass 1: e2fsck asks them before its pass 1).
 * Returns what repair needs when the journal inode itself is usable.
 */
export async function checkJournal(img: Ext4Image, report: Reporter): Promise<JournalFacts | undefined> {
  const sb = img.sb
  const hasJournal = hasFeature(sb, 'compat', 'has_journal')
  const ino = sb.journalInum
  // e2fsck_check_ext3_journal: nothing to do when no field speaks of a journal.
  if (!hasJournal && ino === 0 && sb.journalDev === 0 && isNullUuid(sb.journalUuid)) return undefined
  if (!isNullUuid(sb.journalUuid)) {
    report.add(1, 'JOURNAL_EXTERNAL', `the journal is external (s_journal_uuid ${sb.journalUuid.toString('hex')}): it cannot be found, so it is not checked`)
    return undefined
  }
  // e2fsck_journal_fix_bad_inode: with neither has_journal nor an inode there is nothing to clear (s_journal_dev alone is ignored).
  if (!hasJournal && ino === 0) return undefined
  const inode = await journalInode(img, ino)
  if (inode === 'unchecked') {
    report.note(1, 'JOURNAL_NOT_CHECKED', `journal inode ${ino} is block-mapped: its indirect blocks are not followed, the journal is not checked`, { ino })
    return undefined
  }
  if (typeof inode === 'string') {
    report.add(1, 'JOURNAL_BAD_INODE', `superblock has an invalid journal (inode ${ino}): ${inode}`, ino === 0 ? {} : { ino })
    return undefined
  }
  const { mapped, blocks } = inode
  const bs = img.blockSize
  // ext2fs_bmap of a hole gives block 0: e2fsck then reads the file system's block 0 as the journal superblock.
  const superBlock = mapped.first ?? 0
  const facts: JournalFacts = { superBlock, blocks, superDamaged: false }
  const raw = await img.readBlocks(superBlock, 1, 'journal superblock')
  const damaged = checkJournalSuper(raw, bs, blocks, report, ino)
  if (damaged) {
    facts.superDamaged = true
    return facts
  }
  // The journal loaded: now the flags around it.
  const recover = hasFeature(sb, 'incompat', 'needs_recovery')
  if (!hasJournal) report.add(1, 'JOURNAL_HAS_JOURNAL_CLEAR', `has_journal is clear, but a journal is present (inode ${ino})`, { ino })
  else if (!recover && raw.readUInt32BE(0x1c) !== 0) {
    report.add(1, 'JOURNAL_START_WITHOUT_RECOVERY', `needs_recovery is clear, but the journal has data (s_start ${raw.readUInt32BE(0x1c)})`, { ino, block: superBlock })
  }
  // e2fsck marks the file system in error and clears s_errno (1.47.0 -n even tries to write it back).
  if (!recover && raw.readInt32BE(0x20) !== 0) report.add(1, 'JOURNAL_ERRNO_SET', `the journal recorded error ${raw.readInt32BE(0x20)} (s_errno)`, { ino, block: superBlock })
  return facts
}

/** e2fsck_get_journal's judgement of the journal inode: its map and length, or why it is no journal ('unchecked': block-mapped past its direct blocks). */
async function journalInode(img: Ext4Image, ino: number): Promise<{ mapped: { first: number | undefined; last: number }; blocks: number } | string> {
  if (ino === 0) return 's_journal_inum is 0 with has_journal set'
  if (ino > img.sb.inodesCount) return `s_journal_inum outside 1..${img.sb.inodesCount}`
  let inode: Inode
  try {
    inode = await img.readInode(ino)
  } catch (err) {
    return errText(err)
  }
  if (inode.linksCount === 0) return 'no links'
  if (fileType(inode.mode) !== S_IFREG) return `mode 0${inode.mode.toString(8)} is not a regular file`
  const bs = img.blockSize
  const blocks = Math.floor(inode.size / bs)
  if (blocks < JBD2_MIN_JOURNAL_BLOCKS) return `i_size ${inode.size} is under ${JBD2_MIN_JOURNAL_BLOCKS} blocks`
  const mapped = (inode.flags & INODE_FLAGS.EXTENTS) === 0 ? blockMapped(img, inode) : await mapJournal(img, inode, ino)
  if (typeof mapped === 'string') return mapped
  if ((mapped.last + 1) * bs < inode.size) return `its blocks end at logical block ${mapped.last}, i_size is ${inode.size}`
  return { mapped, blocks }
}

/**
 * e2fsck_journal_load over the superblock's raw block: true when it fails (and a problem is
 * reported). `blocks` is the journal's length by its inode.
 */
function checkJournalSuper(raw: Buffer, bs: number, blocks: number, report: Reporter, ino: number): boolean {
  const add = (code: string, m: string): true => {
    report.add(1, code, `journal superblock (inode ${ino}): ${m}`, { ino })
    return true
  }
  const magic = raw.readUInt32BE(0)
  if (magic !== JBD2_MAGIC_NUMBER) return add('JOURNAL_BAD_MAGIC', `magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${JBD2_MAGIC_NUMBER.toString(16)}`)
  const type = raw.readUInt32BE(0x4)
  const v2 = type === JBD2_SUPERBLOCK_V2
  if (type === JBD2_DESCRIPTOR_BLOCK || type === JBD2_COMMIT_BLOCK || type === JBD2_REVOKE_BLOCK) return add('JOURNAL_BAD_SUPER', `block type ${type} is a log block's, not a superblock's`)
  if (type !== JBD2_SUPERBLOCK_V1 && !v2) return add('JOURNAL_UNSUPPORTED_VERSION', `block type ${type} (a superblock is 3 or 4)`)
  // Only v2 has the fields past s_errno (0x24); a v1 superblock's are cleared without a question.
  if (v2) {
    const users = raw.readUInt32BE(0x40)
    if (users > 1) return add('JOURNAL_MULTIPLE_USERS', `s_nr_users ${users} on an internal journal`)
    const compat = raw.readUInt32BE(0x24)
    const incompat = raw.readUInt32BE(0x28)
    const roCompat = raw.readUInt32BE(0x2c)
    if ((incompat & ~KNOWN_INCOMPAT) !== 0) return add('JOURNAL_UNKNOWN_FEATURE', `unknown incompatible features 0x${(incompat & ~KNOWN_INCOMPAT).toString(16)}`)
    if (roCompat !== 0) return add('JOURNAL_UNKNOWN_FEATURE', `unknown read-only features 0x${roCompat.toString(16)}`)
    const v2sum = (incompat & JBD2_FEATURE_INCOMPAT_CSUM_V2) !== 0
    const v3sum = (incompat & JBD2_FEATURE_INCOMPAT_CSUM_V3) !== 0
    if (v2sum && v3sum) return add('JOURNAL_BAD_SUPER', 'both checksum v2 and v3')
    if ((v2sum || v3sum) && (compat & JBD2_FEATURE_COMPAT_CHECKSUM) !== 0) return add('JOURNAL_BAD_SUPER', 'checksum v2/v3 together with v1 commit checksums')
    if (v2sum || v3sum) {
      const csumType = raw.readUInt8(0x50)
      if (csumType !== JBD2_CRC32C_CHKSUM) return add('JOURNAL_BAD_SUPER', `checksum type ${csumType}, checksum v2/v3 needs crc32c (${JBD2_CRC32C_CHKSUM})`)
      const have = raw.readUInt32BE(JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET)
      const want = journalSuperblockCsum(raw)
      if (have !== want) return add('JOURNAL_BAD_CSUM', `checksum 0x${have.toString(16)}, computed 0x${want.toString(16)}`)
    }
  }
  const jbs = raw.readUInt32BE(0xc)
  if (jbs !== bs) return add('JOURNAL_BAD_BLOCK_SIZE', `s_blocksize ${jbs}, the file system's is ${bs}`)
  const maxlen = raw.readUInt32BE(0x10)
  if (maxlen > blocks) return add('JOURNAL_TOO_SHORT', `s_maxlen ${maxlen}, the journal inode holds ${blocks} blocks`)
  if (v2 && (raw.readUInt32BE(0x28) & JBD2_FEATURE_INCOMPAT_FAST_COMMIT) !== 0) {
    const fc = raw.readUInt32BE(0x54) || JBD2_DEFAULT_FAST_COMMIT_BLOCKS
    // Unsigned, as e2fsck computes it: more fast-commit blocks than the journal wraps around and passes.
    if (((maxlen - fc) >>> 0) < JBD2_MIN_JOURNAL_BLOCKS) return add('JOURNAL_BAD_FC_BLOCKS', `${fc} fast-commit blocks leave under ${JBD2_MIN_JOURNAL_BLOCKS} of ${maxlen}`)
  }
  return false
}

/**
 * ext2fs_block_iterate3 over the journal inode, as e2fsck_get_journal runs it: the blocks in
 * logical order until one lies outside the file system (the walk stops there). Returns the first
 * block's location and the last logical block reached, or why the tree cannot be walked at all.
 */
async function mapJournal(img: Ext4Image, inode: Inode, ino: number): Promise<{ first: number | undefined; last: number } | string> {
  const first0 = img.sb.firstDataBlock
  const end = img.blocksCount
  let last = -1
  let first: number | undefined
  let nodes = 0
  // A node per journal block at most: more is a loop or garbage, not a journal.
  const maxNodes = Math.floor(inode.size / img.blockSize) + 1
  const walk = async (node: ExtentNode): Promise<boolean> => {
    for (const ix of node.indexes) {
      if (ix.leaf < first0 || ix.leaf >= end || ++nodes > maxNodes) return false
      let child: ExtentNode
      try {
        child = decodeExtentNode(await img.readBlocks(ix.leaf, 1, 'journal extent block'), img.blockSize, `inode ${ino} extent block ${ix.leaf}`)
      } catch {
        return false
      }
      if (!(await walk(child))) return false
    }
    for (const e of node.extents) {
      if (e.start < first0 || e.start >= end) return false
      if (e.block === 0) first = e.start
      const inside = Math.min(e.len, end - e.start)
      last = e.block + inside - 1
      if (inside < e.len) return false
    }
    return true
  }
  let root: ExtentNode
  try {
    root = decodeExtentNode(inode.block, I_BLOCK_SIZE, `inode ${ino} extent root`)
  } catch (err) {
    return errText(err)
  }
  await walk(root)
  return { first, last }
}

/**
 * A block-mapped journal (no EXTENTS_FL): the twelve direct pointers, each of which must be a block
 * of the file system (the walk asks for holes, and a hole ends it). Past them the indirect tree is
 * not followed: such a journal is reported as not checked. On an extent-mapped file system this is
 * what a lost EXTENTS_FL looks like: i_block[0] then holds the extent magic, read as a block number.
 */
function blockMapped(img: Ext4Image, inode: Inode): { first: number | undefined; last: number } | 'unchecked' {
  for (let i = 0; i < DIRECT_BLOCKS; i++) {
    const b = inode.block.readUInt32LE(i * 4)
    if (b === 0 || b < img.sb.firstDataBlock || b >= img.blocksCount) return { first: i === 0 ? undefined : inode.block.readUInt32LE(0), last: i - 1 }
  }
  return 'unchecked'
}

const DIRECT_BLOCKS = 12
