/*
 * Changes inside one directory block: first-fit insertion into the slack of
 * a record (or a record emptied by a delete), deletion by merging a record
 * into the one before it (as ext4_generic_delete_entry), rewriting a leaf
 * from a list of entries (after a split), and the two checksum tails that
 * metadata_csum adds: ext4_dir_entry_tail at the end of a leaf, dx_tail
 * after the limit entries of an htree index block.
 */
import { crc32cUpdate } from '../crc32c.ts'
import { DIR_ENTRY_HEADER, DIR_TAIL_SIZE, DX_TAIL_SIZE, dirRecLen, encodeDirTail, recLenFromDisk, recLenToDisk } from '../format/dirent.ts'
import { corrupt } from '../format/errors.ts'
import { inodeSeed } from '../reader/csum-verifier.ts'
import { sameBytes } from '../reader/htree-lookup.ts'
import type { DirFs } from './dir-file.ts'

export interface NewEntry {
  inode: number
  fileType: number
  name: Buffer
}

const ZERO4 = new Uint8Array(4)

/** Where the records of a leaf end: before the checksum tail when there is one. */
export function leafEnd(fs: DirFs): number {
  return fs.csumSeed === undefined ? fs.blockSize : fs.blockSize - DIR_TAIL_SIZE
}

function writeRecord(buf: Buffer, off: number, recLen: number, e: NewEntry, fs: DirFs): void {
  buf.writeUInt32LE(e.inode, off)
  buf.writeUInt16LE(recLenToDisk(recLen, fs.blockSize), off + 4)
  buf.writeUInt8(e.name.length, off + 6)
  buf.writeUInt8(fs.fileType ? e.fileType : 0, off + 7)
  e.name.copy(buf, off + DIR_ENTRY_HEADER)
  buf.fill(0, off + DIR_ENTRY_HEADER + e.name.length, off + dirRecLen(e.name.length))
}

/** Walk the records of a leaf (checked as the reader checks them), calling fn(off, recLen, inode, nameLen) until it returns true. */
function walk(buf: Buffer, fs: DirFs, fn: (off: number, recLen: number, inode: number, nameLen: number, prev: number) => boolean): boolean {
  const end = leafEnd(fs)
  let off = 0
  let prev = -1
  while (off < end) {
    if (off + DIR_ENTRY_HEADER > end) throw corrupt(`directory block: entry header at ${off} crosses the end (${end})`)
    const recLen = recLenFromDisk(buf.readUInt16LE(off + 4), fs.blockSize)
    const nameLen = buf[off + 6] ?? 0
    if (recLen < 12 || recLen % 4 !== 0 || recLen < DIR_ENTRY_HEADER + nameLen || off + recLen > end) {
      throw corrupt(`directory block: bad entry at ${off} (rec_len ${recLen}, name_len ${nameLen})`)
    }
    if (fn(off, recLen, buf.readUInt32LE(off), nameLen, prev)) return true
    prev = off
    off += recLen
  }
  return false
}

/** Put e in the first record with room for it; false when the block is full. */
export function insertInBlock(buf: Buffer, fs: DirFs, e: NewEntry): boolean {
  const need = dirRecLen(e.name.length)
  return walk(buf, fs, (off, recLen, inode, nameLen) => {
    if (inode === 0 && recLen >= need) {
      writeRecord(buf, off, recLen, e, fs)
      return true
    }
    const used = inode === 0 ? 0 : dirRecLen(nameLen)
    if (inode !== 0 && recLen - used >= need) {
      buf.writeUInt16LE(recLenToDisk(used, fs.blockSize), off + 4)
      writeRecord(buf, off + used, recLen - used, e, fs)
      return true
    }
    return false
  })
}

/** Remove the live entry called name: its space joins the record before it (or it becomes an empty record). Its inode, or undefined. */
export function removeFromBlock(buf: Buffer, fs: DirFs, name: Uint8Array): number | undefined {
  let removed: number | undefined
  walk(buf, fs, (off, recLen, inode, nameLen, prev) => {
    if (inode === 0 || nameLen !== name.length || !sameBytes(buf, off + DIR_ENTRY_HEADER, name)) return false
    removed = inode
    if (prev >= 0) {
      const prevLen = recLenFromDisk(buf.readUInt16LE(prev + 4), fs.blockSize)
      buf.writeUInt16LE(recLenToDisk(prevLen + recLen, fs.blockSize), prev + 4)
      buf.fill(0, off, off + recLen)
    } else {
      buf.writeUInt32LE(0, off)
    }
    return true
  })
  return removed
}

/** Is there a record with room for a name of nameLen bytes? */
export function hasRoom(buf: Buffer, fs: DirFs, nameLen: number): boolean {
  const need = dirRecLen(nameLen)
  return walk(buf, fs, (_off, recLen, inode, len) => recLen - (inode === 0 ? 0 : dirRecLen(len)) >= need)
}

/** Rewrite a leaf to hold exactly entries, packed, the last record spanning to the end, then the tail. */
export function composeLeaf(buf: Buffer, fs: DirFs, entries: readonly NewEntry[]): void {
  const end = leafEnd(fs)
  buf.fill(0)
  let off = 0
  for (const [i, e] of entries.entries()) {
    const len = i === entries.length - 1 ? end - off : dirRecLen(e.name.length)
    if (off + len > end) throw new RangeError('entries do not fit one directory block')
    writeRecord(buf, off, len, e, fs)
    off += len
  }
  if (entries.length === 0) buf.writeUInt16LE(recLenToDisk(end, fs.blockSize), 4)
  if (fs.csumSeed !== undefined) encodeDirTail(0).copy(buf, end)
}

/** Recompute a leaf's tail checksum (no-op without metadata_csum). */
export function setLeafCsum(buf: Buffer, fs: DirFs, ino: number, generation: number): void {
  if (fs.csumSeed === undefined) return
  const t = fs.blockSize - DIR_TAIL_SIZE
  buf.writeUInt32LE(crc32cUpdate(inodeSeed(fs.csumSeed, ino, generation), buf.subarray(0, t)), t + 8)
}

/** Recompute an index block's dx_tail checksum: over the header and the entries in use, then dt_reserved and a zero sum. */
export function setDxCsum(buf: Buffer, fs: DirFs, ino: number, generation: number, countOffset: number): void {
  if (fs.csumSeed === undefined) return
  const limit = buf.readUInt16LE(countOffset)
  const count = buf.readUInt16LE(countOffset + 2)
  const tail = countOffset + limit * 8
  if (tail + DX_TAIL_SIZE > fs.blockSize) throw corrupt(`htree block: limit ${limit} leaves no room for the tail`)
  let c = crc32cUpdate(inodeSeed(fs.csumSeed, ino, generation), buf.subarray(0, countOffset + count * 8))
  c = crc32cUpdate(c, buf.subarray(tail, tail + 4))
  buf.writeUInt32LE(crc32cUpdate(c, ZERO4), tail + 4)
}
