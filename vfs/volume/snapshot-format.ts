import { crc32 } from 'node:zlib'
import { VolumeError } from './layer.ts'

/**
 * The on-disk format of a snapshot exception store (dm-snapshot's persistent store, redone with
 * checksums). Byte layout, all integers big-endian:
 *
 *   [0, 512)          header: magic, version, chunk size, chunk count, map and data offsets, crc
 *   [4096, 12288)     snapshot table: 64 slots of 128 bytes (state, name, created, sequence, crc)
 *   [12288, dataOff)  exception map: one 32-byte slot per store data chunk (origin chunk, mask, crc)
 *   [dataOff, ...)    data chunks, chunk-aligned
 *
 * Why fixed map slots and not an append-only log: freeing a deleted snapshot's chunks is then a
 * rewrite of a slot in place, the map never needs compacting, and its size is fixed by the store's
 * size, so open reads a bounded area. Why a bitmask of snapshot ids per chunk and not a refcount
 * plus per-snapshot maps: one copy made while snapshots A and B both lacked a chunk serves both
 * with one record, and deleting B is clearing one bit; 64 snapshots fill exactly a u64. A slot
 * (32 or 128 bytes, aligned) lies inside one 512-byte sector, so a power cut cannot tear it; a
 * checksum mismatch is therefore damage, and open refuses rather than serve a wrong snapshot.
 */

export const STORE_MAGIC = Buffer.from('TSNFSSNP', 'latin1')
export const STORE_VERSION = 1
export const HEADER_SIZE = 512
export const TABLE_OFFSET = 4096
export const MAX_SNAPSHOTS = 64
export const TABLE_SLOT = 128
export const MAP_OFFSET = TABLE_OFFSET + MAX_SNAPSHOTS * TABLE_SLOT
export const MAP_SLOT = 32
export const MAX_NAME = 64
export const MIN_CHUNK = 4096
export const MAX_CHUNK = 16 * 1024 * 1024
/** dm-snapshot's usual chunk is 4 to 64 KiB; 64 KiB keeps the map small and a copy one large I/O. */
export const DEFAULT_CHUNK = 64 * 1024

export type SnapshotState = 'live' | 'deleting' | 'invalid'
const STATE_CODE: Record<SnapshotState, number> = { live: 1, deleting: 2, invalid: 3 }
const CODE_STATE: readonly (SnapshotState | undefined)[] = [undefined, 'live', 'deleting', 'invalid']

export interface StoreLayout {
  readonly chunkSize: number
  readonly chunkCount: number
  readonly dataOffset: number
}

export interface TableEntry {
  readonly id: number
  readonly name: string
  /** Milliseconds since the epoch when it was created. */
  readonly created: number
  /** Creation order across the store's life: the oldest snapshot has the smallest. */
  readonly seq: number
  readonly state: SnapshotState
}

export interface MapEntry {
  readonly originChunk: number
  /** Bit i set: snapshot id i reads this chunk from here. 0: the chunk is free. */
  readonly mask: bigint
}

function corrupt(message: string): VolumeError {
  return new VolumeError('VOLUME_SNAPSHOT', message)
}

/** The layout a store of `size` bytes and `chunkSize` chunks has: as many chunks as fit beside their map slots. */
export function layoutFor(size: number, chunkSize: number, sectorSize: number): StoreLayout {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < MIN_CHUNK || chunkSize > MAX_CHUNK || (chunkSize & (chunkSize - 1)) !== 0 || chunkSize % sectorSize !== 0) {
    throw new VolumeError('VOLUME_LAYOUT', `snapshot chunk size ${chunkSize} is not a power of two from ${MIN_CHUNK} to ${MAX_CHUNK} bytes`)
  }
  const dataOffsetFor = (n: number): number => Math.ceil((MAP_OFFSET + n * MAP_SLOT) / chunkSize) * chunkSize
  let chunkCount = Math.max(0, Math.floor((size - MAP_OFFSET) / (chunkSize + MAP_SLOT)))
  while (chunkCount > 0 && dataOffsetFor(chunkCount) + chunkCount * chunkSize > size) chunkCount--
  if (chunkCount === 0) throw new VolumeError('VOLUME_LAYOUT', `a snapshot store of ${size} bytes holds no ${chunkSize}-byte chunk`)
  return { chunkSize, chunkCount, dataOffset: dataOffsetFor(chunkCount) }
}

export function encodeHeader(layout: StoreLayout): Buffer {
  const b = Buffer.alloc(HEADER_SIZE)
  STORE_MAGIC.copy(b, 0)
  b.writeUInt32BE(STORE_VERSION, 8)
  b.writeUInt32BE(layout.chunkSize, 12)
  b.writeUInt32BE(layout.chunkCount, 16)
  b.writeUInt32BE(MAX_SNAPSHOTS, 20)
  b.writeBigUInt64BE(BigInt(layout.dataOffset), 24)
  b.writeUInt32BE(crc32(b.subarray(0, HEADER_SIZE - 4)), HEADER_SIZE - 4)
  return b
}

/** Checks the header against the layout the device's own size implies: nothing read from disk sizes an allocation. */
export function decodeHeader(b: Buffer, size: number, sectorSize: number): StoreLayout {
  if (!b.subarray(0, 8).equals(STORE_MAGIC)) throw new VolumeError('VOLUME_NO_SUPERBLOCK', 'no snapshot store header (bad magic)')
  if (b.readUInt32BE(HEADER_SIZE - 4) !== crc32(b.subarray(0, HEADER_SIZE - 4))) {
    throw new VolumeError('VOLUME_NO_SUPERBLOCK', 'snapshot store header checksum mismatch')
  }
  const version = b.readUInt32BE(8)
  if (version !== STORE_VERSION) throw new VolumeError('VOLUME_LAYOUT', `snapshot store version ${version}, expected ${STORE_VERSION}`)
  const layout = layoutFor(size, b.readUInt32BE(12), sectorSize)
  const chunkCount = b.readUInt32BE(16)
  const slots = b.readUInt32BE(20)
  const dataOffset = b.readBigUInt64BE(24)
  if (chunkCount !== layout.chunkCount || slots !== MAX_SNAPSHOTS || dataOffset !== BigInt(layout.dataOffset)) {
    throw new VolumeError('VOLUME_LAYOUT', `snapshot store header says ${chunkCount} chunks at ${dataOffset}, a ${size}-byte store holds ${layout.chunkCount} at ${layout.dataOffset}`)
  }
  return layout
}

export function encodeTableEntry(e: TableEntry): Buffer {
  const b = Buffer.alloc(TABLE_SLOT)
  const name = Buffer.from(e.name, 'utf8')
  b.writeUInt8(STATE_CODE[e.state], 0)
  b.writeUInt8(name.length, 1)
  b.writeUInt8(e.id, 2)
  b.writeBigUInt64BE(BigInt(e.created), 4)
  b.writeUInt32BE(e.seq, 12)
  name.copy(b, 16)
  b.writeUInt32BE(crc32(b.subarray(0, TABLE_SLOT - 4)), TABLE_SLOT - 4)
  return b
}

/** An all-zero slot is free (undefined); anything else must be a whole, valid entry for slot `id`. */
export function decodeTableEntry(b: Buffer, id: number): TableEntry | undefined {
  if (b.every((x) => x === 0)) return undefined
  if (b.readUInt32BE(TABLE_SLOT - 4) !== crc32(b.subarray(0, TABLE_SLOT - 4))) throw corrupt(`snapshot table slot ${id} checksum mismatch`)
  const state = CODE_STATE[b.readUInt8(0)]
  const nameLength = b.readUInt8(1)
  const created = b.readBigUInt64BE(4)
  if (state === undefined || nameLength === 0 || nameLength > MAX_NAME || b.readUInt8(2) !== id || created > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw corrupt(`snapshot table slot ${id} is not a valid entry`)
  }
  const name = b.subarray(16, 16 + nameLength).toString('utf8')
  return { id, name, created: Number(created), seq: b.readUInt32BE(12), state }
}

export function encodeMapEntry(e: MapEntry): Buffer {
  const b = Buffer.alloc(MAP_SLOT)
  if (e.mask === 0n) return b
  b.writeBigUInt64BE(BigInt(e.originChunk), 0)
  b.writeBigUInt64BE(e.mask, 8)
  b.writeUInt32BE(crc32(b.subarray(0, MAP_SLOT - 4)), MAP_SLOT - 4)
  return b
}

/** A free slot (all zero) decodes as mask 0. */
export function decodeMapEntry(b: Buffer, slot: number): MapEntry {
  // Open reads every slot of the map, most of them free: test words, not bytes.
  if ((b.readUInt32BE(0) | b.readUInt32BE(4) | b.readUInt32BE(8) | b.readUInt32BE(12) | b.readUInt32BE(16) | b.readUInt32BE(20) | b.readUInt32BE(24) | b.readUInt32BE(28)) === 0) {
    return { originChunk: 0, mask: 0n }
  }
  if (b.readUInt32BE(MAP_SLOT - 4) !== crc32(b.subarray(0, MAP_SLOT - 4))) throw corrupt(`exception map slot ${slot} checksum mismatch`)
  const origin = b.readBigUInt64BE(0)
  const mask = b.readBigUInt64BE(8)
  if (origin > BigInt(Number.MAX_SAFE_INTEGER) || mask === 0n) throw corrupt(`exception map slot ${slot} is not a valid entry`)
  return { originChunk: Number(origin), mask }
}

/**
 * Names are what a command line passes: 1 to 64 bytes of UTF-8, no NUL; and since an export shows
 * each snapshot as a directory `.snapshot/NAME/`, a file name: no "/", not "." or "..".
 */
export function checkName(name: string): void {
  const n = Buffer.byteLength(name, 'utf8')
  if (n === 0 || n > MAX_NAME || name.includes('\0') || name.includes('/') || name === '.' || name === '..') {
    throw new VolumeError('VOLUME_SNAPSHOT', `snapshot name ${JSON.stringify(name.slice(0, MAX_NAME))} must be 1 to ${MAX_NAME} bytes without NUL or "/", and not "." or ".."`)
  }
}
