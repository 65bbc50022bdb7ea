/*
 * The superblock: 1024 bytes at byte 1024 of the image (super.rst). Decoded
 * as is, every field; the derived numbers (block size, 64-bit counts, group
 * count) are computed by the functions below, which validate nothing: the
 * reader's open() does that, against the image size.
 */
import { decodeFields, encodeFields, fieldEnd } from './fields.ts'
import type { FieldTable } from './fields.ts'
import { hasFeature } from './features.ts'

export const SUPERBLOCK_OFFSET = 1024
export const SUPERBLOCK_SIZE = 1024
export const EXT4_SUPER_MAGIC = 0xef53
/** s_checksum: crc32c of the 1020 bytes before it (checksums.rst). */
export const SUPERBLOCK_CHECKSUM_OFFSET = 0x3fc

export interface Superblock {
  inodesCount: number
  blocksCountLo: number
  rBlocksCountLo: number
  freeBlocksCountLo: number
  freeInodesCount: number
  firstDataBlock: number
  logBlockSize: number
  logClusterSize: number
  blocksPerGroup: number
  clustersPerGroup: number
  inodesPerGroup: number
  mtime: number
  wtime: number
  mntCount: number
  maxMntCount: number
  magic: number
  state: number
  errors: number
  minorRevLevel: number
  lastcheck: number
  checkinterval: number
  creatorOs: number
  revLevel: number
  defResuid: number
  defResgid: number
  firstIno: number
  inodeSize: number
  blockGroupNr: number
  featureCompat: number
  featureIncompat: number
  featureRoCompat: number
  uuid: Buffer
  volumeName: Buffer
  lastMounted: Buffer
  algorithmUsageBitmap: number
  preallocBlocks: number
  preallocDirBlocks: number
  reservedGdtBlocks: number
  journalUuid: Buffer
  journalInum: number
  journalDev: number
  lastOrphan: number
  /** s_hash_seed[4], the htree hash seed, as 16 bytes. */
  hashSeed: Buffer
  defHashVersion: number
  jnlBackupType: number
  descSize: number
  defaultMountOpts: number
  firstMetaBg: number
  mkfsTime: number
  /** s_jnl_blocks[17]: a copy of the journal inode's i_block[15], i_size_high, i_size. */
  jnlBlocks: Buffer
  blocksCountHi: number
  rBlocksCountHi: number
  freeBlocksCountHi: number
  minExtraIsize: number
  wantExtraIsize: number
  flags: number
  raidStride: number
  mmpInterval: number
  mmpBlock: number
  raidStripeWidth: number
  logGroupsPerFlex: number
  checksumType: number
  kbytesWritten: number
  snapshotInum: number
  snapshotId: number
  snapshotRBlocksCount: number
  snapshotList: number
  errorCount: number
  firstErrorTime: number
  firstErrorIno: number
  firstErrorBlock: number
  firstErrorFunc: Buffer
  firstErrorLine: number
  lastErrorTime: number
  lastErrorIno: number
  lastErrorLine: number
  lastErrorBlock: number
  lastErrorFunc: Buffer
  mountOpts: Buffer
  usrQuotaInum: number
  grpQuotaInum: number
  overheadClusters: number
  backupBgs0: number
  backupBgs1: number
  encryptAlgos: Buffer
  encryptPwSalt: Buffer
  lpfIno: number
  prjQuotaInum: number
  checksumSeed: number
  wtimeHi: number
  mtimeHi: number
  mkfsTimeHi: number
  lastcheckHi: number
  firstErrorTimeHi: number
  lastErrorTimeHi: number
  firstErrorErrcode: number
  lastErrorErrcode: number
  encoding: number
  encodingFlags: number
  orphanFileInum: number
  checksum: number
}

/** Offsets from super.rst. */
const FIELDS: FieldTable = [
  ['inodesCount', 0x0, 'u32'],
  ['blocksCountLo', 0x4, 'u32'],
  ['rBlocksCountLo', 0x8, 'u32'],
  ['freeBlocksCountLo', 0xc, 'u32'],
  ['freeInodesCount', 0x10, 'u32'],
  ['firstDataBlock', 0x14, 'u32'],
  ['logBlockSize', 0x18, 'u32'],
  ['logClusterSize', 0x1c, 'u32'],
  ['blocksPerGroup', 0x20, 'u32'],
  ['clustersPerGroup', 0x24, 'u32'],
  ['inodesPerGroup', 0x28, 'u32'],
  ['mtime', 0x2c, 'u32'],
  ['wtime', 0x30, 'u32'],
  ['mntCount', 0x34, 'u16'],
  ['maxMntCount', 0x36, 'u16'],
  ['magic', 0x38, 'u16'],
  ['state', 0x3a, 'u16'],
  ['errors', 0x3c, 'u16'],
  ['minorRevLevel', 0x3e, 'u16'],
  ['lastcheck', 0x40, 'u32'],
  ['checkinterval', 0x44, 'u32'],
  ['creatorOs', 0x48, 'u32'],
  ['revLevel', 0x4c, 'u32'],
  ['defResuid', 0x50, 'u16'],
  ['defResgid', 0x52, 'u16'],
  ['firstIno', 0x54, 'u32'],
  ['inodeSize', 0x58, 'u16'],
  ['blockGroupNr', 0x5a, 'u16'],
  ['featureCompat', 0x5c, 'u32'],
  ['featureIncompat', 0x60, 'u32'],
  ['featureRoCompat', 0x64, 'u32'],
  ['uuid', 0x68, { bytes: 16 }],
  ['volumeName', 0x78, { bytes: 16 }],
  ['lastMounted', 0x88, { bytes: 64 }],
  ['algorithmUsageBitmap', 0xc8, 'u32'],
  ['preallocBlocks', 0xcc, 'u8'],
  ['preallocDirBlocks', 0xcd, 'u8'],
  ['reservedGdtBlocks', 0xce, 'u16'],
  ['journalUuid', 0xd0, { bytes: 16 }],
  ['journalInum', 0xe0, 'u32'],
  ['journalDev', 0xe4, 'u32'],
  ['lastOrphan', 0xe8, 'u32'],
  ['hashSeed', 0xec, { bytes: 16 }],
  ['defHashVersion', 0xfc, 'u8'],
  ['jnlBackupType', 0xfd, 'u8'],
  ['descSize', 0xfe, 'u16'],
  ['defaultMountOpts', 0x100, 'u32'],
  ['firstMetaBg', 0x104, 'u32'],
  ['mkfsTime', 0x108, 'u32'],
  ['jnlBlocks', 0x10c, { bytes: 68 }],
  ['blocksCountHi', 0x150, 'u32'],
  ['rBlocksCountHi', 0x154, 'u32'],
  ['freeBlocksCountHi', 0x158, 'u32'],
  ['minExtraIsize', 0x15c, 'u16'],
  ['wantExtraIsize', 0x15e, 'u16'],
  ['flags', 0x160, 'u32'],
  ['raidStride', 0x164, 'u16'],
  ['mmpInterval', 0x166, 'u16'],
  ['mmpBlock', 0x168, 'u64'],
  ['raidStripeWidth', 0x170, 'u32'],
  ['logGroupsPerFlex', 0x174, 'u8'],
  ['checksumType', 0x175, 'u8'],
  ['kbytesWritten', 0x178, 'u64'],
  ['snapshotInum', 0x180, 'u32'],
  ['snapshotId', 0x184, 'u32'],
  ['snapshotRBlocksCount', 0x188, 'u64'],
  ['snapshotList', 0x190, 'u32'],
  ['errorCount', 0x194, 'u32'],
  ['firstErrorTime', 0x198, 'u32'],
  ['firstErrorIno', 0x19c, 'u32'],
  ['firstErrorBlock', 0x1a0, 'u64'],
  ['firstErrorFunc', 0x1a8, { bytes: 32 }],
  ['firstErrorLine', 0x1c8, 'u32'],
  ['lastErrorTime', 0x1cc, 'u32'],
  ['lastErrorIno', 0x1d0, 'u32'],
  ['lastErrorLine', 0x1d4, 'u32'],
  ['lastErrorBlock', 0x1d8, 'u64'],
  ['lastErrorFunc', 0x1e0, { bytes: 32 }],
  ['mountOpts', 0x200, { bytes: 64 }],
  ['usrQuotaInum', 0x240, 'u32'],
  ['grpQuotaInum', 0x244, 'u32'],
  ['overheadClusters', 0x248, 'u32'],
  ['backupBgs0', 0x24c, 'u32'],
  ['backupBgs1', 0x250, 'u32'],
  ['encryptAlgos', 0x254, { bytes: 4 }],
  ['encryptPwSalt', 0x258, { bytes: 16 }],
  ['lpfIno', 0x268, 'u32'],
  ['prjQuotaInum', 0x26c, 'u32'],
  ['checksumSeed', 0x270, 'u32'],
  ['wtimeHi', 0x274, 'u8'],
  ['mtimeHi', 0x275, 'u8'],
  ['mkfsTimeHi', 0x276, 'u8'],
  ['lastcheckHi', 0x277, 'u8'],
  ['firstErrorTimeHi', 0x278, 'u8'],
  ['lastErrorTimeHi', 0x279, 'u8'],
  ['firstErrorErrcode', 0x27a, 'u8'],
  ['lastErrorErrcode', 0x27b, 'u8'],
  ['encoding', 0x27c, 'u16'],
  ['encodingFlags', 0x27e, 'u16'],
  ['orphanFileInum', 0x280, 'u32'],
  ['checksum', 0x3fc, 'u32'],
]

if (fieldEnd(FIELDS) !== SUPERBLOCK_SIZE) throw new Error('superblock field table does not end at 1024')

/** Decode the 1024 bytes of a superblock (buf.length >= 1024). */
export function decodeSuperblock(buf: Buffer): Superblock {
  if (buf.length < SUPERBLOCK_SIZE) throw new RangeError(`superblock needs ${SUPERBLOCK_SIZE} bytes, got ${buf.length}`)
  return decodeFields(buf, 0, FIELDS) as unknown as Superblock
}

/** Encode sb into 1024 bytes; the reserved bytes come from base (a previous raw superblock) or are zero. */
export function encodeSuperblock(sb: Superblock, base?: Buffer): Buffer {
  const out = Buffer.alloc(SUPERBLOCK_SIZE)
  if (base !== undefined) base.copy(out, 0, 0, SUPERBLOCK_SIZE)
  encodeFields(out, 0, FIELDS, sb as unknown as Record<string, unknown>)
  return out
}

export function blockSize(sb: Superblock): number {
  return 1024 * 2 ** sb.logBlockSize
}

export function is64bit(sb: Superblock): boolean {
  return hasFeature(sb, 'incompat', '64bit')
}

/** s_blocks_count: the high word counts only with the 64bit feature. */
export function blocksCount(sb: Superblock): number {
  return sb.blocksCountLo + (is64bit(sb) ? sb.blocksCountHi * 2 ** 32 : 0)
}

export function freeBlocksCount(sb: Superblock): number {
  return sb.freeBlocksCountLo + (is64bit(sb) ? sb.freeBlocksCountHi * 2 ** 32 : 0)
}

export function reservedBlocksCount(sb: Superblock): number {
  return sb.rBlocksCountLo + (is64bit(sb) ? sb.rBlocksCountHi * 2 ** 32 : 0)
}

/** Bytes per group descriptor: 32, or s_desc_size with 64bit. */
export function descSize(sb: Superblock): number {
  return is64bit(sb) ? sb.descSize : 32
}

/** Revision 0 file systems have 128-byte inodes and s_inode_size unset. */
export function inodeSize(sb: Superblock): number {
  return sb.revLevel === 0 ? 128 : sb.inodeSize
}

export function groupCount(sb: Superblock): number {
  return Math.ceil((blocksCount(sb) - sb.firstDataBlock) / sb.blocksPerGroup)
}
