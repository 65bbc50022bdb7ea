import { crc32 } from 'node:zlib'
import { VolumeError } from './layer.ts'
import { BACKUP_HEADER } from './reshape-plan.ts'

/**
 * A reshape in progress, as the configuration records it (md's reshape_position in the
 * superblock): the configuration's root already names the new layout (the new member appended
 * last), `from` says how many of its children the old layout had, and `position` how many bytes
 * of the volume, from its start, the new layout holds (durably, on every member). Each checkpoint
 * is a configuration at seq + 1. `backup` says the window starting at `position` sits, whole and
 * flushed, in the backup area (its rows are being overwritten in place): a resume takes the
 * window from there, not from the old rows.
 */
export interface ReshapeRecord {
  readonly from: number
  readonly position: number
  readonly backup: boolean
  /** 16 random bytes (32 hex digits): a backup of another reshape of these disks never matches. */
  readonly id: string
}

const HEX16 = /^[0-9a-f]{32}$/

function fail(path: string, what: string): never {
  throw new VolumeError('VOLUME_LAYOUT', `${path}: ${what}`)
}

/** Checks an untrusted reshape record against the root's child count (the new layout's members). */
export function validateReshape(v: unknown, rootKind: string, children: number): ReshapeRecord {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('reshape', 'not an object')
  const o = v as Record<string, unknown>
  for (const k of Object.keys(o)) if (!['from', 'position', 'backup', 'id'].includes(k)) fail('reshape', `unknown field '${k}'`)
  if (rootKind !== 'stripe' && rootKind !== 'raid5') fail('reshape', `a ${rootKind} is never reshaped`)
  const min = rootKind === 'raid5' ? 3 : 2
  const from = o.from
  if (typeof from !== 'number' || !Number.isSafeInteger(from) || from < min || from >= children) fail('reshape.from', `${JSON.stringify(from)} is not an integer in [${min}, ${children - 1}]`)
  const position = o.position
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0 || position % 512 !== 0) fail('reshape.position', `${JSON.stringify(position)} is not a non-negative multiple of 512`)
  if (typeof o.backup !== 'boolean') fail('reshape.backup', 'not a boolean')
  if (typeof o.id !== 'string' || !HEX16.test(o.id)) fail('reshape.id', `${JSON.stringify(o.id)} is not 32 lower-case hex digits`)
  return { from, position, backup: o.backup, id: o.id }
}

/*
 * The backup area's header block, big-endian: 0 magic "TSNFSRSH", 8 reshape id (16 bytes),
 * 24 u64 volume position of the window, 32 u32 data length, 36 u32 CRC-32 of the data,
 * 40 u32 CRC-32 of bytes [0, 40). The data follows the block. Both checksums: a backup torn by a
 * crash (header written, data not, or the reverse) is detected, never restored.
 */
const MAGIC = Buffer.from('TSNFSRSH', 'latin1')

export function encodeBackup(id: string, position: number, data: Buffer): Buffer {
  const out = Buffer.alloc(BACKUP_HEADER + data.length)
  MAGIC.copy(out, 0)
  out.write(id, 8, 16, 'hex')
  out.writeBigUInt64BE(BigInt(position), 24)
  out.writeUInt32BE(data.length, 32)
  out.writeUInt32BE(crc32(data), 36)
  out.writeUInt32BE(crc32(out.subarray(0, 40)), 40)
  data.copy(out, BACKUP_HEADER)
  return out
}

/** The backed-up window, if `stored` holds a whole backup of this reshape's window at `position`; else why not. */
export function decodeBackup(stored: Buffer, id: string, position: number, length: number): Buffer | string {
  if (stored.length < BACKUP_HEADER + length) return 'shorter than the window'
  if (!stored.subarray(0, 8).equals(MAGIC)) return 'no backup magic'
  if (stored.readUInt32BE(40) !== crc32(stored.subarray(0, 40))) return 'header checksum mismatch'
  if (stored.toString('hex', 8, 24) !== id) return 'a backup of another reshape'
  if (stored.readBigUInt64BE(24) !== BigInt(position) || stored.readUInt32BE(32) !== length) return `a backup of another window (at ${stored.readBigUInt64BE(24)})`
  const data = stored.subarray(BACKUP_HEADER, BACKUP_HEADER + length)
  if (stored.readUInt32BE(36) !== crc32(data)) return 'data checksum mismatch (a torn backup)'
  return data
}
