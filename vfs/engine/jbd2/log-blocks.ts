/*
 * The blocks of the log between the superblock and the free space (journal.rst "Descriptor
 * Block", "Revocation Block", "Commit Block"; kernel-jbd.h). Each starts with the 12-byte header
 * (magic, block type, sequence = the tid it belongs to), all big-endian.
 *
 * - descriptor: one tag per journaled block that follows it in the log, saying where the block
 *   goes home. With csum v3 a tag is journal_block_tag3_t (16 bytes: blocknr, flags, blocknr_high,
 *   crc32c of the sequence and the block as logged); without csum it is 12 bytes (8 without 64bit).
 *   The first tag is followed by a 16-byte uuid slot (zero for an internal journal), later tags say SAME_UUID; the last says
 *   LAST_TAG. A block whose first word is the magic is logged with that word zeroed (ESCAPE),
 *   otherwise recovery would take it for a log block.
 * - revoke: r_count (bytes used, header included) and 8-byte block numbers (4 without 64bit).
 * - commit: ends a transaction; with csum v3 it carries crc32c of itself in h_chksum[0] and the
 *   commit time, which recovery uses to tell stale blocks of an older log from damage.
 * With csum v2/v3 descriptor and revoke blocks end in a 4-byte tail: crc32c of the whole block.
 * Every checksum is the raw crc32c seeded with journalCsumSeed (crc32c(~0, uuid)).
 */
import { crc32cUpdate } from '../crc32c.ts'
import { Jbd2Error } from './errors.ts'
import { hasCsumV2or3, has64bit, journalCsumSeed, JBD2_MAGIC_NUMBER } from './superblock.ts'
import type { JournalSuperblock } from './superblock.ts'

export const JOURNAL_HEADER_SIZE = 12
export const REVOKE_HEADER_SIZE = 16
const TAIL_SIZE = 4
const UUID_SIZE = 16

export const JBD2_FLAG_ESCAPE = 0x1
export const JBD2_FLAG_SAME_UUID = 0x2
export const JBD2_FLAG_DELETED = 0x4
export const JBD2_FLAG_LAST_TAG = 0x8

/** Commit header offsets (struct commit_header). */
const COMMIT_CHKSUM_TYPE = 0xc
const COMMIT_CHKSUM_SIZE = 0xd
const COMMIT_CHKSUM = 0x10
const COMMIT_SEC = 0x30
const COMMIT_NSEC = 0x38

/** What the log's block layout depends on, taken from the journal superblock. */
export interface LogFormat {
  blockSize: number
  /** csum v3: tags carry 32-bit checksums, descriptor/revoke blocks a tail, commit blocks a crc. */
  csum: boolean
  is64: boolean
  /** crc32c(~0, journal uuid). */
  seed: number
}

export function logFormat(sb: JournalSuperblock): LogFormat {
  return { blockSize: sb.blockSize, csum: hasCsumV2or3(sb), is64: has64bit(sb), seed: journalCsumSeed(sb) }
}

/** journal_tag_bytes: tag3 with csum v3, else journal_block_tag_t less blocknr_high without 64bit. */
export function tagBytes(f: LogFormat): number {
  if (f.csum) return 16
  return f.is64 ? 12 : 8
}

function tailBytes(f: LogFormat): number {
  return f.csum ? TAIL_SIZE : 0
}

/** Tags one descriptor block holds as we write them (first tag + uuid, tail). */
export function descriptorCapacity(f: LogFormat): number {
  return Math.floor((f.blockSize - JOURNAL_HEADER_SIZE - UUID_SIZE - tailBytes(f)) / tagBytes(f))
}

function revokeRecordBytes(f: LogFormat): number {
  return f.is64 ? 8 : 4
}

/** Block numbers one revoke block holds. */
export function revokeCapacity(f: LogFormat): number {
  return Math.floor((f.blockSize - REVOKE_HEADER_SIZE - tailBytes(f)) / revokeRecordBytes(f))
}

export interface LogHeader {
  blockType: number
  sequence: number
}

/** The header of a log block, or undefined when it does not start with the magic (end of log). */
export function readLogHeader(buf: Buffer): LogHeader | undefined {
  if (buf.length < JOURNAL_HEADER_SIZE || buf.readUInt32BE(0) !== JBD2_MAGIC_NUMBER) return undefined
  return { blockType: buf.readUInt32BE(4), sequence: buf.readUInt32BE(8) }
}

function writeHeader(buf: Buffer, blockType: number, sequence: number): void {
  buf.writeUInt32BE(JBD2_MAGIC_NUMBER, 0)
  buf.writeUInt32BE(blockType, 4)
  buf.writeUInt32BE(sequence >>> 0, 8)
}

/** crc32c(seed) of the whole block with the 4 bytes at `hole` taken as zero. */
function blockCsumWithHole(f: LogFormat, buf: Buffer, hole: number): number {
  let c = crc32cUpdate(f.seed, buf.subarray(0, hole))
  c = crc32cUpdate(c, ZERO4)
  return crc32cUpdate(c, buf.subarray(hole + 4, f.blockSize))
}

const ZERO4 = new Uint8Array(4)

/** Descriptor and revoke blocks: does the tail checksum match (always true without csum)? */
export function tailCsumOk(f: LogFormat, buf: Buffer): boolean {
  if (!f.csum) return true
  const at = f.blockSize - TAIL_SIZE
  return blockCsumWithHole(f, buf, at) === buf.readUInt32BE(at)
}

/** Write the tail checksum of a descriptor or revoke block (a no-op without csum). */
export function setTailCsum(f: LogFormat, buf: Buffer): void {
  if (!f.csum) return
  const at = f.blockSize - TAIL_SIZE
  buf.writeUInt32BE(blockCsumWithHole(f, buf, at), at)
}

/** jbd2_block_tag_csum: crc32c over the be32 sequence, then the block as logged. */
export function tagCsum(f: LogFormat, sequence: number, logged: Uint8Array): number {
  SEQ.writeUInt32BE(sequence >>> 0)
  return crc32cUpdate(crc32cUpdate(f.seed, SEQ), logged)
}

/** tagCsum's be32 sequence, reused: it runs once per journaled block. */
const SEQ = Buffer.alloc(4)

export interface LoggedBlock {
  /** Home block number in the file system. */
  block: number
  /** The block as it goes into the log (first word zeroed when escaped). */
  data: Buffer
  escaped: boolean
}

/** Escape a block for the log: a copy with the first word zeroed when it starts with the magic. */
export function escapeBlock(block: number, data: Buffer): LoggedBlock {
  if (data.length >= 4 && data.readUInt32BE(0) === JBD2_MAGIC_NUMBER) {
    const copy = Buffer.from(data)
    copy.writeUInt32BE(0, 0)
    return { block, data: copy, escaped: true }
  }
  return { block, data, escaped: false }
}

/** One descriptor block for `blocks` (at most descriptorCapacity), which follow it in the log. */
export function encodeDescriptor(f: LogFormat, sequence: number, blocks: readonly LoggedBlock[]): Buffer {
  if (blocks.length === 0 || blocks.length > descriptorCapacity(f)) {
    throw new RangeError(`descriptor of ${blocks.length} tags (1..${descriptorCapacity(f)})`)
  }
  const buf = Buffer.alloc(f.blockSize)
  writeHeader(buf, 1, sequence)
  const size = tagBytes(f)
  let at = JOURNAL_HEADER_SIZE
  blocks.forEach((b, i) => {
    let flags = i === 0 ? 0 : JBD2_FLAG_SAME_UUID
    if (b.escaped) flags |= JBD2_FLAG_ESCAPE
    if (i === blocks.length - 1) flags |= JBD2_FLAG_LAST_TAG
    buf.writeUInt32BE(b.block % 2 ** 32, at)
    // Flags are a be16 at offset 6 in both tag layouts (tag3 widens it to a be32 at 4).
    buf.writeUInt16BE(flags, at + 6)
    if (f.is64) buf.writeUInt32BE(Math.floor(b.block / 2 ** 32), at + 8)
    if (f.csum) buf.writeUInt32BE(tagCsum(f, sequence, b.data), at + 12)
    at += size
    // The kernel leaves the uuid after the first tag zero for an internal journal (its j_uuid is
    // never filled in), and so does debugfs; so do we, to write the kernel's bytes exactly.
    if (i === 0) at += UUID_SIZE
  })
  setTailCsum(f, buf)
  return buf
}

export interface BlockTag {
  block: number
  flags: number
  /** The tag's checksum (csum v3), else 0. */
  checksum: number
}

/**
 * The tags of a descriptor block, as count_tags reads them: until LAST_TAG or until the next tag
 * would run into the tail. Never more than the block can hold, whatever the bytes say.
 */
export function decodeDescriptor(f: LogFormat, buf: Buffer): BlockTag[] {
  if (buf.length !== f.blockSize) throw new RangeError(`descriptor of ${buf.length} bytes, block size ${f.blockSize}`)
  const size = tagBytes(f)
  const end = f.blockSize - tailBytes(f)
  const tags: BlockTag[] = []
  let at = JOURNAL_HEADER_SIZE
  while (at + size <= end) {
    const flags = buf.readUInt16BE(at + 6)
    const high = f.is64 ? buf.readUInt32BE(at + 8) : 0
    tags.push({ block: buf.readUInt32BE(at) + high * 2 ** 32, flags, checksum: f.csum ? buf.readUInt32BE(at + 12) : 0 })
    at += size
    if ((flags & JBD2_FLAG_SAME_UUID) === 0) at += UUID_SIZE
    if ((flags & JBD2_FLAG_LAST_TAG) !== 0) break
  }
  return tags
}

/** One revoke block for `blocks` (at most revokeCapacity). */
export function encodeRevoke(f: LogFormat, sequence: number, blocks: readonly number[]): Buffer {
  if (blocks.length === 0 || blocks.length > revokeCapacity(f)) {
    throw new RangeError(`revoke block of ${blocks.length} records (1..${revokeCapacity(f)})`)
  }
  const buf = Buffer.alloc(f.blockSize)
  writeHeader(buf, 5, sequence)
  const rec = revokeRecordBytes(f)
  let at = REVOKE_HEADER_SIZE
  for (const b of blocks) {
    if (rec === 8) buf.writeBigUInt64BE(BigInt(b), at)
    else buf.writeUInt32BE(b, at)
    at += rec
  }
  buf.writeUInt32BE(at, JOURNAL_HEADER_SIZE)
  setTailCsum(f, buf)
  return buf
}

/** The block numbers of a revoke block; an r_count that overruns the block is JBD2_CORRUPT. */
export function decodeRevoke(f: LogFormat, buf: Buffer, where: string): number[] {
  const count = buf.readUInt32BE(JOURNAL_HEADER_SIZE)
  const max = f.blockSize - tailBytes(f)
  if (count > max) throw new Jbd2Error('JBD2_CORRUPT', `${where}: revoke r_count ${count} beyond the ${max} bytes a revoke block holds`)
  const rec = revokeRecordBytes(f)
  const out: number[] = []
  for (let at = REVOKE_HEADER_SIZE; at + rec <= count; at += rec) {
    out.push(rec === 8 ? Number(buf.readBigUInt64BE(at)) : buf.readUInt32BE(at))
  }
  return out
}

/** The commit block of `sequence`, stamped with the commit time. */
export function encodeCommit(f: LogFormat, sequence: number, sec: number, nsec: number): Buffer {
  const buf = Buffer.alloc(f.blockSize)
  writeHeader(buf, 2, sequence)
  buf.writeBigUInt64BE(BigInt(sec), COMMIT_SEC)
  buf.writeUInt32BE(nsec, COMMIT_NSEC)
  // jbd2_commit_block_csum_set: type and size stay 0 under csum v2/v3; h_chksum[0] is the crc.
  if (f.csum) buf.writeUInt32BE(blockCsumWithHole(f, buf, COMMIT_CHKSUM), COMMIT_CHKSUM)
  return buf
}

export interface CommitInfo {
  sec: number
  nsec: number
  /** csum v3: h_chksum[0] matches; always true without csum. */
  checksumOk: boolean
}

export function decodeCommit(f: LogFormat, buf: Buffer): CommitInfo {
  // Seconds past 2^53 cannot be a real commit; saturate rather than lose the ordering.
  const sec = Number(BigInt.asUintN(64, buf.readBigUInt64BE(COMMIT_SEC)))
  const checksumOk = !f.csum || blockCsumWithHole(f, buf, COMMIT_CHKSUM) === buf.readUInt32BE(COMMIT_CHKSUM)
  return { sec, nsec: buf.readUInt32BE(COMMIT_NSEC), checksumOk }
}

/** For tests and logdump-like tools: h_chksum_type and size as found. */
export function commitChecksumFields(buf: Buffer): { type: number; size: number; value: number } {
  return { type: buf.readUInt8(COMMIT_CHKSUM_TYPE), size: buf.readUInt8(COMMIT_CHKSUM_SIZE), value: buf.readUInt32BE(COMMIT_CHKSUM) }
}
