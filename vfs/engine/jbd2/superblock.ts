/*
 * The jbd2 journal superblock: the first block of the journal (journal.rst "Super Block";
 * e2fsprogs lib/ext2fs/kernel-jbd.h journal_superblock_t). Unlike the ext4 superblock every
 * field is big-endian: jbd2 came from ext3's journal, which was written to be byte-order neutral.
 * The structure is 1024 bytes; the rest of the journal's first block is unused.
 */
import { crc32cUpdate } from '../crc32c.ts'
import { Jbd2Error } from './errors.ts'

export const JBD2_MAGIC_NUMBER = 0xc03b3998
export const JOURNAL_SUPERBLOCK_SIZE = 1024

/** h_blocktype of the 12-byte header every journal metadata block starts with. */
export const JBD2_DESCRIPTOR_BLOCK = 1
export const JBD2_COMMIT_BLOCK = 2
export const JBD2_SUPERBLOCK_V1 = 3
export const JBD2_SUPERBLOCK_V2 = 4
export const JBD2_REVOKE_BLOCK = 5
export const JBD2_FC_BLOCK = 6

/** s_feature_compat: v1 commit-block checksums (a crc32 of the whole transaction). */
export const JBD2_FEATURE_COMPAT_CHECKSUM = 0x1
export const JBD2_FEATURE_INCOMPAT_REVOKE = 0x1
export const JBD2_FEATURE_INCOMPAT_64BIT = 0x2
export const JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT = 0x4
export const JBD2_FEATURE_INCOMPAT_CSUM_V2 = 0x8
export const JBD2_FEATURE_INCOMPAT_CSUM_V3 = 0x10
export const JBD2_FEATURE_INCOMPAT_FAST_COMMIT = 0x20

/** s_checksum_type values; only crc32c goes with csum v2/v3. */
export const JBD2_CRC32_CHKSUM = 1
export const JBD2_MD5_CHKSUM = 2
export const JBD2_SHA1_CHKSUM = 3
export const JBD2_CRC32C_CHKSUM = 4

/** s_checksum sits at 0xFC: crc32c(~0) over the 1024-byte structure with this field zeroed. */
export const JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET = 0xfc
/** s_users: up to 48 16-byte uuids of file systems sharing an external journal. */
export const JBD2_USERS_MAX = 48

const INCOMPAT_NAMES: ReadonlyArray<readonly [number, string]> = [
  [JBD2_FEATURE_INCOMPAT_REVOKE, 'journal_incompat_revoke'],
  [JBD2_FEATURE_INCOMPAT_64BIT, 'journal_64bit'],
  [JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT, 'journal_async_commit'],
  [JBD2_FEATURE_INCOMPAT_CSUM_V2, 'journal_checksum_v2'],
  [JBD2_FEATURE_INCOMPAT_CSUM_V3, 'journal_checksum_v3'],
  [JBD2_FEATURE_INCOMPAT_FAST_COMMIT, 'journal_fast_commit'],
]

/**
 * What we write and replay: revoke records, 64-bit block numbers, and csum v3 (optional in what we
 * read: a journal mke2fs has just made has no features until first use). Async commit, csum v2,
 * v1 checksums and fast commits are refused: their replay rules differ and we never write them.
 */
export const SUPPORTED_INCOMPAT = JBD2_FEATURE_INCOMPAT_REVOKE | JBD2_FEATURE_INCOMPAT_64BIT | JBD2_FEATURE_INCOMPAT_CSUM_V3

export interface JournalSuperblock {
  /** h_blocktype: 3 (v1) or 4 (v2); v1 has no feature words. */
  blockType: number
  /** s_header.h_sequence: unused in the superblock, kept for round trips. */
  headerSequence: number
  blockSize: number
  /** Blocks in the journal, superblock included. */
  maxlen: number
  /** The first log block (after the superblock). */
  first: number
  /** The tid expected at `start`: the oldest transaction still in the log. */
  sequence: number
  /** The log block where the oldest transaction starts; 0 when the log is empty (clean). */
  start: number
  /** A journal error recorded by the kernel (a negative errno), or 0. */
  errno: number
  featureCompat: number
  featureIncompat: number
  featureRoCompat: number
  uuid: Buffer
  nrUsers: number
  dynsuper: number
  maxTransaction: number
  maxTransData: number
  checksumType: number
  numFcBlks: number
  /** s_head: the block after the last transaction at the last clean unmount (kernel bookkeeping). */
  head: number
  checksum: number
  /** s_users: 768 bytes. */
  users: Buffer
}

export function decodeJournalSuperblock(buf: Buffer): JournalSuperblock {
  if (buf.length < JOURNAL_SUPERBLOCK_SIZE) {
    throw new Jbd2Error('JBD2_BAD_SUPERBLOCK', `journal superblock needs ${JOURNAL_SUPERBLOCK_SIZE} bytes, got ${buf.length}`)
  }
  const magic = buf.readUInt32BE(0)
  if (magic !== JBD2_MAGIC_NUMBER) throw new Jbd2Error('JBD2_BAD_MAGIC', `journal superblock magic ${hex(magic)}, expected ${hex(JBD2_MAGIC_NUMBER)}`)
  return {
    blockType: buf.readUInt32BE(0x4),
    headerSequence: buf.readUInt32BE(0x8),
    blockSize: buf.readUInt32BE(0xc),
    maxlen: buf.readUInt32BE(0x10),
    first: buf.readUInt32BE(0x14),
    sequence: buf.readUInt32BE(0x18),
    start: buf.readUInt32BE(0x1c),
    errno: buf.readInt32BE(0x20),
    featureCompat: buf.readUInt32BE(0x24),
    featureIncompat: buf.readUInt32BE(0x28),
    featureRoCompat: buf.readUInt32BE(0x2c),
    uuid: Buffer.from(buf.subarray(0x30, 0x40)),
    nrUsers: buf.readUInt32BE(0x40),
    dynsuper: buf.readUInt32BE(0x44),
    maxTransaction: buf.readUInt32BE(0x48),
    maxTransData: buf.readUInt32BE(0x4c),
    checksumType: buf.readUInt8(0x50),
    numFcBlks: buf.readUInt32BE(0x54),
    head: buf.readUInt32BE(0x58),
    checksum: buf.readUInt32BE(JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET),
    users: Buffer.from(buf.subarray(0x100, 0x400)),
  }
}

/**
 * Encode into 1024 bytes. The padding comes from `base` (a previous raw superblock) or is zero.
 * s_checksum is written as given: call `setJournalSuperblockChecksum` after changing a field.
 */
export function encodeJournalSuperblock(sb: JournalSuperblock, base?: Buffer): Buffer {
  const out = Buffer.alloc(JOURNAL_SUPERBLOCK_SIZE)
  if (base !== undefined) base.copy(out, 0, 0, JOURNAL_SUPERBLOCK_SIZE)
  out.writeUInt32BE(JBD2_MAGIC_NUMBER, 0)
  out.writeUInt32BE(sb.blockType, 0x4)
  out.writeUInt32BE(sb.headerSequence, 0x8)
  out.writeUInt32BE(sb.blockSize, 0xc)
  out.writeUInt32BE(sb.maxlen, 0x10)
  out.writeUInt32BE(sb.first, 0x14)
  out.writeUInt32BE(sb.sequence >>> 0, 0x18)
  out.writeUInt32BE(sb.start, 0x1c)
  out.writeInt32BE(sb.errno, 0x20)
  out.writeUInt32BE(sb.featureCompat, 0x24)
  out.writeUInt32BE(sb.featureIncompat, 0x28)
  out.writeUInt32BE(sb.featureRoCompat, 0x2c)
  out.fill(0, 0x30, 0x40)
  sb.uuid.copy(out, 0x30, 0, 16)
  out.writeUInt32BE(sb.nrUsers, 0x40)
  out.writeUInt32BE(sb.dynsuper, 0x44)
  out.writeUInt32BE(sb.maxTransaction, 0x48)
  out.writeUInt32BE(sb.maxTransData, 0x4c)
  out.writeUInt8(sb.checksumType, 0x50)
  out.writeUInt32BE(sb.numFcBlks, 0x54)
  out.writeUInt32BE(sb.head, 0x58)
  out.writeUInt32BE(sb.checksum >>> 0, JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET)
  out.fill(0, 0x100, 0x400)
  sb.users.copy(out, 0x100, 0, 0x300)
  return out
}

/** jbd2_superblock_csum: crc32c(~0) over the 1024 bytes, s_checksum taken as zero. */
export function journalSuperblockCsum(raw: Uint8Array): number {
  const head = crc32cUpdate(0xffffffff, raw.subarray(0, JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET))
  const zeroed = crc32cUpdate(head, ZERO4)
  return crc32cUpdate(zeroed, raw.subarray(JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET + 4, JOURNAL_SUPERBLOCK_SIZE))
}

const ZERO4 = new Uint8Array(4)

/** Does this journal carry v2/v3 block checksums (tags, descriptor tails, commit headers)? */
export function hasCsumV2or3(sb: Pick<JournalSuperblock, 'blockType' | 'featureIncompat'>): boolean {
  return sb.blockType === JBD2_SUPERBLOCK_V2 && (sb.featureIncompat & (JBD2_FEATURE_INCOMPAT_CSUM_V2 | JBD2_FEATURE_INCOMPAT_CSUM_V3)) !== 0
}

export function has64bit(sb: Pick<JournalSuperblock, 'blockType' | 'featureIncompat'>): boolean {
  return sb.blockType === JBD2_SUPERBLOCK_V2 && (sb.featureIncompat & JBD2_FEATURE_INCOMPAT_64BIT) !== 0
}

/** Write s_checksum into raw (1024+ bytes) when the journal has csum v2/v3; leaves it alone otherwise. */
export function setJournalSuperblockChecksum(raw: Buffer): void {
  const sb = decodeJournalSuperblock(raw)
  if (hasCsumV2or3(sb)) raw.writeUInt32BE(journalSuperblockCsum(raw), JOURNAL_SUPERBLOCK_CHECKSUM_OFFSET)
}

/** The seed of every block checksum in the log: crc32c(~0) over the journal's uuid. */
export function journalCsumSeed(sb: Pick<JournalSuperblock, 'uuid'>): number {
  return crc32cUpdate(0xffffffff, sb.uuid)
}

export interface NewJournalOptions {
  blockSize: number
  /** Blocks in the journal inode, superblock included. */
  maxlen: number
  /** The file system's s_uuid: an internal journal carries it. */
  uuid: Uint8Array
}

/**
 * An empty v2 journal as mke2fs writes it for an internal journal (s_first 1, s_sequence 1,
 * s_start 0, one user whose uuid lives in the fs superblock, so s_users stays zero), with the
 * features the kernel sets on first mount of a 64bit metadata_csum file system (64bit, csum v3,
 * crc32c) already on, checksum included. Returns the full first journal block.
 */
export function newJournalSuperblock(opts: NewJournalOptions): Buffer {
  const { blockSize, maxlen, uuid } = opts
  if (!Number.isInteger(blockSize) || blockSize < JOURNAL_SUPERBLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw new Jbd2Error('JBD2_BAD_SUPERBLOCK', `journal block size ${blockSize} is not a power of two >= ${JOURNAL_SUPERBLOCK_SIZE}`)
  }
  // jbd2 refuses journals shorter than JBD2_MIN_JOURNAL_BLOCKS (1024).
  if (!Number.isInteger(maxlen) || maxlen < JBD2_MIN_JOURNAL_BLOCKS || maxlen > 0xffffffff) {
    throw new Jbd2Error('JBD2_BAD_SUPERBLOCK', `journal of ${maxlen} blocks (at least ${JBD2_MIN_JOURNAL_BLOCKS})`)
  }
  if (uuid.length !== 16) throw new Jbd2Error('JBD2_BAD_SUPERBLOCK', `journal uuid of ${uuid.length} bytes, expected 16`)
  const sb: JournalSuperblock = {
    blockType: JBD2_SUPERBLOCK_V2,
    headerSequence: 0,
    blockSize,
    maxlen,
    first: 1,
    sequence: 1,
    start: 0,
    errno: 0,
    featureCompat: 0,
    featureIncompat: JBD2_FEATURE_INCOMPAT_64BIT | JBD2_FEATURE_INCOMPAT_CSUM_V3,
    featureRoCompat: 0,
    uuid: Buffer.from(uuid),
    nrUsers: 1,
    dynsuper: 0,
    maxTransaction: 0,
    maxTransData: 0,
    checksumType: JBD2_CRC32C_CHKSUM,
    numFcBlks: 0,
    head: 0,
    checksum: 0,
    users: Buffer.alloc(0x300),
  }
  const block = Buffer.alloc(blockSize)
  encodeJournalSuperblock(sb).copy(block)
  setJournalSuperblockChecksum(block)
  return block
}

export const JBD2_MIN_JOURNAL_BLOCKS = 1024

/**
 * Check a decoded superblock against the journal it heads: `blockSize` is the file system's,
 * `blocks` how many blocks the journal inode maps. Throws a Jbd2Error naming the first problem.
 * `raw` (the 1024 bytes it was decoded from) is needed to verify the checksum.
 */
export function validateJournalSuperblock(sb: JournalSuperblock, raw: Buffer, blockSize: number, blocks: number): void {
  const bad = (m: string): Jbd2Error => new Jbd2Error('JBD2_BAD_SUPERBLOCK', m)
  if (sb.blockType !== JBD2_SUPERBLOCK_V1 && sb.blockType !== JBD2_SUPERBLOCK_V2) throw bad(`block type ${sb.blockType}, expected 3 or 4`)
  if (sb.blockSize !== blockSize) throw bad(`s_blocksize ${sb.blockSize}, the file system's is ${blockSize}`)
  if (sb.maxlen < JBD2_MIN_JOURNAL_BLOCKS) throw bad(`s_maxlen ${sb.maxlen} below ${JBD2_MIN_JOURNAL_BLOCKS}`)
  if (sb.maxlen > blocks) throw bad(`s_maxlen ${sb.maxlen} beyond the ${blocks} blocks of the journal inode`)
  if (sb.first < 1 || sb.first >= sb.maxlen) throw bad(`s_first ${sb.first} outside [1, ${sb.maxlen})`)
  if (sb.start !== 0 && (sb.start < sb.first || sb.start >= sb.maxlen)) throw bad(`s_start ${sb.start} outside [${sb.first}, ${sb.maxlen})`)
  if (sb.blockType === JBD2_SUPERBLOCK_V1) return
  if (sb.nrUsers > JBD2_USERS_MAX) throw bad(`s_nr_users ${sb.nrUsers} above ${JBD2_USERS_MAX}`)
  if (sb.featureCompat & JBD2_FEATURE_COMPAT_CHECKSUM) {
    throw new Jbd2Error('JBD2_UNSUPPORTED_FEATURE', 'journal feature journal_checksum (v1 commit checksums)')
  }
  const unsupported = sb.featureIncompat & ~SUPPORTED_INCOMPAT
  if (unsupported !== 0) {
    const names = INCOMPAT_NAMES.filter(([bit]) => (unsupported & bit) !== 0).map(([, name]) => name)
    if (names.length === 0) names.push(`incompat ${hex(unsupported)}`)
    throw new Jbd2Error('JBD2_UNSUPPORTED_FEATURE', `journal feature ${names.join(', ')}`)
  }
  if (hasCsumV2or3(sb)) {
    if (sb.checksumType !== JBD2_CRC32C_CHKSUM) {
      throw new Jbd2Error('JBD2_UNSUPPORTED_FEATURE', `journal checksum type ${sb.checksumType}, only crc32c (4) goes with csum v3`)
    }
    const want = journalSuperblockCsum(raw)
    if (want !== sb.checksum >>> 0) {
      throw new Jbd2Error('JBD2_BAD_CHECKSUM', `journal superblock checksum ${hex(sb.checksum)}, computed ${hex(want)}`)
    }
  }
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`
}
