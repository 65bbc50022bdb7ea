/*
 * Is a block an extended attribute block whose entries can be trusted? The
 * rules e2fsck's check_ext_attr applies before it counts a block (each fault
 * there is "Clear? yes": the inode loses the block): h_magic and h_blocks of
 * the header; entries from the end of the 32-byte header to a zero word, each
 * with a name index (version 2 names have one), its value inside the block
 * and in the block itself, no two pieces (header, entries, values, the end
 * word) overlapping, and e_hash the hash of name and value (ext4 xattr.c
 * ext4_xattr_hash_entry; kernels before 6.2 hashed name bytes as signed chars,
 * so both are valid). An entry whose value lives in its own inode (e_value_inum,
 * INCOMPAT_EA_INODE) has no value bytes here: its hash covers the value inode's
 * hash, so it is judged with that inode (ea-inode.ts), not here.
 */
/** h_magic of an ext4 extended attribute block (EXT4_XATTR_MAGIC). */
export const XATTR_MAGIC = 0xea020000
const HEADER_SIZE = 32
const ENTRY_SIZE = 16
const BLOCKS_OFFSET = 0x8
export const XATTR_HEADER_SIZE = HEADER_SIZE
export const XATTR_ENTRY_SIZE = ENTRY_SIZE
const NAME_HASH_SHIFT = 5
const VALUE_HASH_SHIFT = 16

/** Bytes an entry takes: its 16-byte head and name, rounded to 4 (EXT4_XATTR_LEN). */
export function entryLen(nameLen: number): number {
  return (nameLen + ENTRY_SIZE + 3) & ~3
}

function rotl(h: number, n: number): number {
  return ((h << n) | (h >>> (32 - n))) >>> 0
}

/** The hash of the name of the entry at off alone, its bytes as unsigned or signed chars. */
function nameHash(buf: Buffer, off: number, nameLen: number, signed: boolean): number {
  let h = 0
  for (let i = 0; i < nameLen; i++) {
    const c = buf[off + ENTRY_SIZE + i] ?? 0
    h = (rotl(h, NAME_HASH_SHIFT) ^ (signed && c >= 0x80 ? c - 0x100 : c)) >>> 0
  }
  return h
}

/** e_hash of the entry at off whose value is at valueOffs (size bytes, hashed as le32 words), names as unsigned or signed chars. */
export function entryHash(buf: Buffer, off: number, nameLen: number, valueOffs: number, size: number, signed: boolean): number {
  let h = nameHash(buf, off, nameLen, signed)
  for (let w = 0; w < (size + 3) >> 2; w++) h = (rotl(h, VALUE_HASH_SHIFT) ^ buf.readUInt32LE(valueOffs + w * 4)) >>> 0
  return h
}

/**
 * e_hash of an entry whose value is in inode (ea_inode): the name's hash, then the value inode's
 * hash (its i_atime, a crc32c of the value) as the one value word (ext4 xattr.c
 * ext4_xattr_set_entry; e2fsprogs ext2fs_ext_attr_hash_entry3). Unsigned and signed names.
 */
export function eaInodeEntryHashes(buf: Buffer, off: number, valueHash: number): [number, number] {
  const nameLen = buf.readUInt8(off)
  const mix = (h: number): number => (rotl(h, VALUE_HASH_SHIFT) ^ valueHash) >>> 0
  return [mix(nameHash(buf, off, nameLen, false)), mix(nameHash(buf, off, nameLen, true))]
}

/** An entry naming a value inode. */
export interface EaInodeRef {
  /** Byte offset of the entry in its buffer. */
  off: number
  inum: number
  size: number
  hash: number
}

/** The entries from off (to a zero word or end) that keep their value in an inode; the walk stops where an entry would pass end. */
export function eaInodeRefs(buf: Buffer, off: number, end = buf.length): EaInodeRef[] {
  const out: EaInodeRef[] = []
  while (off + ENTRY_SIZE <= end && buf.readUInt32LE(off) !== 0) {
    const inum = buf.readUInt32LE(off + 4)
    if (inum !== 0) out.push({ off, inum, size: buf.readUInt32LE(off + 8), hash: buf.readUInt32LE(off + 12) })
    off += entryLen(buf.readUInt8(off))
  }
  return out
}

/**
 * Why buf is no sound extended attribute block (undefined: it is one). eaInode: the file system
 * has INCOMPAT_EA_INODE, so an entry may name a value inode; without it such an entry is a fault.
 */
export function xattrBlockFault(buf: Buffer, eaInode = false): string | undefined {
  const bs = buf.length
  if (buf.readUInt32LE(0) !== XATTR_MAGIC) return `bad magic 0x${buf.readUInt32LE(0).toString(16)}`
  if (buf.readUInt32LE(BLOCKS_OFFSET) !== 1) return `h_blocks ${buf.readUInt32LE(BLOCKS_OFFSET)} (one block only)`
  const taken: Array<[number, number]> = [[0, HEADER_SIZE]]
  const take = (at: number, len: number): boolean => {
    if (at + len > bs || taken.some(([a, n]) => at < a + n && a < at + len)) return false
    taken.push([at, len])
    return true
  }
  let off = HEADER_SIZE
  while (off + 4 <= bs && buf.readUInt32LE(off) !== 0) {
    if (off + ENTRY_SIZE > bs) return `entry at ${off} runs past the block`
    const nameLen = buf.readUInt8(off)
    const len = entryLen(nameLen)
    if (!take(off, len)) return `entry at ${off} overlaps another part or the block's end (allocation collision)`
    if (buf.readUInt8(off + 1) === 0) return `entry at ${off} has no name index`
    const valueOffs = buf.readUInt16LE(off + 2)
    const valueInum = buf.readUInt32LE(off + 4)
    const size = buf.readUInt32LE(off + 8)
    if (valueInum !== 0) {
      if (!eaInode) return `entry at ${off} keeps its value in inode ${valueInum} without the ea_inode feature`
      // The value is in inode valueInum: nothing of it here; its hash is judged with that inode.
      off += len
      continue
    }
    if (valueOffs + size > bs) return `entry at ${off}: value ${valueOffs}+${size} outside the block`
    if (size !== 0 && !take(valueOffs, (size + 3) & ~3)) return `entry at ${off}: value at ${valueOffs} overlaps another part (allocation collision)`
    const hash = buf.readUInt32LE(off + 12)
    if (hash !== entryHash(buf, off, nameLen, valueOffs, size, false) && hash !== entryHash(buf, off, nameLen, valueOffs, size, true)) {
      return `entry at ${off}: e_hash 0x${hash.toString(16)} is not the hash of its name and value`
    }
    off += len
  }
  if (!take(off, 4)) return `no end of entries at ${off} (allocation collision)`
  return undefined
}

/**
 * The value of the entry named (index, name) among the entries from off (to a zero word or end),
 * values counted from valueBase; null when the entries cannot be read (an entry or value past
 * end), undefined when they can and none has that name. A value kept in an inode is returned as an
 * empty buffer: its bytes are that inode's.
 */
export function findEntry(buf: Buffer, off: number, end: number, valueBase: number, index: number, name: string): Buffer | null | undefined {
  const want = Buffer.from(name, 'latin1')
  while (off + 4 <= end && buf.readUInt32LE(off) !== 0) {
    if (off + ENTRY_SIZE > end) return null
    const nameLen = buf.readUInt8(off)
    if (off + ENTRY_SIZE + nameLen > end) return null
    const valueOffs = buf.readUInt16LE(off + 2)
    const inum = buf.readUInt32LE(off + 4)
    const size = buf.readUInt32LE(off + 8)
    if (inum === 0 && valueBase + valueOffs + size > end) return null
    if (buf.readUInt8(off + 1) === index && nameLen === want.length && buf.subarray(off + ENTRY_SIZE, off + ENTRY_SIZE + nameLen).equals(want)) {
      return inum === 0 ? buf.subarray(valueBase + valueOffs, valueBase + valueOffs + size) : Buffer.alloc(0)
    }
    off += entryLen(nameLen)
  }
  return off + 4 <= end ? undefined : null
}
