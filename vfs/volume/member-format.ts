import { crc32 } from 'node:zlib'
import type { VolumeConfig } from './config.ts'
import { validateConfig } from './config.ts'
import { VolumeError } from './layer.ts'

/**
 * The member superblock: what makes a disk self-describing (issue 14 item 2). The first
 * MEMBER_RESERVED bytes of every member disk are ours; layers see only the data area after them.
 *
 *   [0, 384 KiB)        superblock copy 0
 *   [384 KiB, 768 KiB)  superblock copy 1
 *   [768 KiB, 1 MiB)    this member's copy of the write-intent bitmap
 *   [1 MiB, ...)        the data area
 *
 * Two copies, rewritten one after the other with a flush between, so a write torn by a crash
 * leaves the other whole (md keeps one copy, LDM keeps its database at both ends of the disk).
 *
 * A copy, big-endian (offsets in bytes):
 *   0  magic "TSNFSVOL"          8  u32 format version (1)     12 u32 config length
 *  16  volume id (16 bytes)     32  member uuid (16 bytes)     48 u32 member index
 *  52  u32 CRC-32 of the copy (header with this field zero, then the config)
 *  56  u64 data offset          64  u64 data size              72 u64 sequence number
 *  80  the configuration, UTF-8 JSON
 */

export const MEMBER_RESERVED = 1024 * 1024
export const SUPERBLOCK_SLOT = 384 * 1024
export const SUPERBLOCK_OFFSETS: readonly number[] = [0, SUPERBLOCK_SLOT]
export const INTENT_OFFSET = 2 * SUPERBLOCK_SLOT
export const INTENT_LENGTH = MEMBER_RESERVED - INTENT_OFFSET
export const MEMBER_MAGIC = Buffer.from('TSNFSVOL', 'latin1')
export const MEMBER_FORMAT_VERSION = 1
export const HEADER_SIZE = 80
/** The configuration's cap, checked before anything is allocated or read for it. */
export const MAX_CONFIG_BYTES = 256 * 1024
const CRC_AT = 52

export interface MemberSuperblock {
  readonly volumeId: string
  readonly memberUuid: string
  readonly memberIndex: number
  readonly dataOffset: number
  readonly dataSize: number
  readonly seq: number
  readonly config: VolumeConfig
}

function noSuperblock(what: string): never {
  throw new VolumeError('VOLUME_NO_SUPERBLOCK', what)
}

function layout(what: string): never {
  throw new VolumeError('VOLUME_LAYOUT', what)
}

/** Checks that the header's fields agree with the configuration they travel with. */
function checkAgreement(sb: MemberSuperblock): void {
  const c = sb.config
  if (c.id !== sb.volumeId) layout(`superblock volume id ${sb.volumeId} differs from its configuration's ${c.id}`)
  if (c.seq !== sb.seq) layout(`superblock sequence ${sb.seq} differs from its configuration's ${c.seq}`)
  const m = c.members[sb.memberIndex]
  if (m?.uuid !== sb.memberUuid) layout(`member index ${sb.memberIndex} is not member ${sb.memberUuid} in its configuration`)
  if (m.size !== sb.dataSize) layout(`data size ${sb.dataSize} differs from member ${sb.memberUuid}'s ${m.size} in its configuration`)
  if (sb.dataOffset < MEMBER_RESERVED || sb.dataOffset % 512 !== 0) layout(`data offset ${sb.dataOffset} is not a sector past the reserved ${MEMBER_RESERVED} bytes`)
}

/** One superblock copy, unpadded. */
export function encodeMemberSuperblock(sb: MemberSuperblock): Buffer {
  checkAgreement(sb)
  const json = Buffer.from(JSON.stringify(sb.config), 'utf8')
  if (json.length > MAX_CONFIG_BYTES) layout(`configuration of ${json.length} bytes exceeds ${MAX_CONFIG_BYTES}`)
  const out = Buffer.alloc(HEADER_SIZE + json.length)
  MEMBER_MAGIC.copy(out, 0)
  out.writeUInt32BE(MEMBER_FORMAT_VERSION, 8)
  out.writeUInt32BE(json.length, 12)
  out.write(sb.volumeId, 16, 16, 'hex')
  out.write(sb.memberUuid, 32, 16, 'hex')
  out.writeUInt32BE(sb.memberIndex, 48)
  out.writeBigUInt64BE(BigInt(sb.dataOffset), 56)
  out.writeBigUInt64BE(BigInt(sb.dataSize), 64)
  out.writeBigUInt64BE(BigInt(sb.seq), 72)
  json.copy(out, HEADER_SIZE)
  out.writeUInt32BE(crc32(out), CRC_AT)
  return out
}

/** The CRC a copy should carry: over all of it with the CRC field read as zero. */
export function superblockCrc(copy: Buffer): number {
  const saved = copy.readUInt32BE(CRC_AT)
  copy.writeUInt32BE(0, CRC_AT)
  const crc = crc32(copy)
  copy.writeUInt32BE(saved, CRC_AT)
  return crc
}

/**
 * The config length a header announces, checked against the cap before the caller reads or
 * allocates that much. Throws VOLUME_NO_SUPERBLOCK for a header without our magic or of another
 * format version.
 */
export function configLengthOf(header: Buffer): number {
  if (header.length < HEADER_SIZE) noSuperblock(`${header.length} bytes, shorter than a superblock header (${HEADER_SIZE})`)
  if (!header.subarray(0, 8).equals(MEMBER_MAGIC)) noSuperblock('no TSNFSVOL magic')
  // Before the length and checksum: a later format may place them elsewhere, and "made by a newer
  // tsnfs" is the message that helps.
  const version = header.readUInt32BE(8)
  if (version !== MEMBER_FORMAT_VERSION) noSuperblock(`format version ${version} is not supported (this build reads ${MEMBER_FORMAT_VERSION})`)
  const length = header.readUInt32BE(12)
  if (length > MAX_CONFIG_BYTES) noSuperblock(`configuration length ${length} exceeds ${MAX_CONFIG_BYTES}`)
  return length
}

function safe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) noSuperblock(`${what} ${v} is beyond 2^53`)
  return Number(v)
}

/**
 * Decodes one copy (header and configuration; bytes after them are ignored). No magic, a bad
 * length, a checksum mismatch or an unknown version: VOLUME_NO_SUPERBLOCK. A checksummed copy
 * whose configuration is invalid or disagrees with its header: VOLUME_LAYOUT.
 */
export function decodeMemberSuperblock(copy: Buffer): MemberSuperblock {
  const length = configLengthOf(copy)
  if (copy.length < HEADER_SIZE + length) noSuperblock(`truncated: ${copy.length} bytes, the header announces ${HEADER_SIZE + length}`)
  const body = copy.subarray(0, HEADER_SIZE + length)
  const crc = body.readUInt32BE(CRC_AT)
  const want = superblockCrc(body)
  if (crc !== want) noSuperblock(`checksum ${crc.toString(16).padStart(8, '0')} does not match the contents (${want.toString(16).padStart(8, '0')})`)
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8', HEADER_SIZE))
  } catch (err) {
    layout(`configuration is not JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  const sb: MemberSuperblock = {
    volumeId: body.toString('hex', 16, 32),
    memberUuid: body.toString('hex', 32, 48),
    memberIndex: body.readUInt32BE(48),
    dataOffset: safe(body.readBigUInt64BE(56), 'data offset'),
    dataSize: safe(body.readBigUInt64BE(64), 'data size'),
    seq: safe(body.readBigUInt64BE(72), 'sequence number'),
    config: validateConfig(parsed),
  }
  checkAgreement(sb)
  return sb
}
