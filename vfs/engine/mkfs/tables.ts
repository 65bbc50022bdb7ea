/*
 * The bytes of the file system's own tables: superblock (and its copies),
 * group descriptors, block and inode bitmaps, with every checksum
 * metadata_csum asks for (checksums.rst). Values are those mke2fs 1.47
 * writes on Debian 12 for the same geometry.
 */
import { crc32cUpdate } from '../crc32c.ts'
import { COMPAT, INCOMPAT, RO_COMPAT } from '../format/features.ts'
import { BG_BLOCK_UNINIT, BG_INODE_UNINIT, BG_INODE_ZEROED, encodeGroupDesc, GROUP_DESC_CHECKSUM_OFFSET } from '../format/group-desc.ts'
import { EXT4_SUPER_MAGIC, encodeSuperblock, SUPERBLOCK_CHECKSUM_OFFSET } from '../format/superblock.ts'
import type { Superblock } from '../format/superblock.ts'
import { CHECKSUM_TYPE_CRC32C, groupDescCsum, superblockCsum } from '../reader/csum-verifier.ts'
import { DESC_SIZE, EXTRA_ISIZE, FIRST_INO, groupFirstBlock, groupLastBlock, INODE_SIZE, LOG_GROUPS_PER_FLEX } from './geometry.ts'
import type { Plan } from './place.ts'
import { JOURNAL_INO } from './place.ts'
import type { RaidFields } from './raid.ts'

/** Debian 12's mkfs.ext4 features (mke2fs.conf base_features + the ext4 type's). */
export const MKFS_FEATURES = {
  compat: COMPAT.has_journal | COMPAT.ext_attr | COMPAT.resize_inode | COMPAT.dir_index,
  incompat: INCOMPAT.filetype | INCOMPAT.extent | INCOMPAT['64bit'] | INCOMPAT.flex_bg,
  roCompat:
    RO_COMPAT.sparse_super | RO_COMPAT.large_file | RO_COMPAT.huge_file | RO_COMPAT.dir_nlink | RO_COMPAT.extra_isize | RO_COMPAT.metadata_csum,
}

/** s_default_mount_opts: user_xattr, acl (mke2fs.conf default_mntopts). */
const DEFM_XATTR_USER_ACL = 0x0004 | 0x0008
/** s_flags: signed_directory_hash, because char is signed on the machines mke2fs's default assumes. */
const FLAGS_SIGNED_HASH = 0x1
const STATE_VALID = 1
const ERRORS_CONTINUE = 1
const DYNAMIC_REV = 1
const HASH_HALF_MD4 = 1
/** s_jnl_backup_type: s_jnl_blocks holds a copy of the journal inode's block map. */
const JNL_BACKUP_BLOCKS = 1

export interface SuperblockInput {
  uuid: Buffer
  hashSeed: Buffer
  label: Buffer
  time: number
  /** i_block, i_size_high, i_size of the journal inode. */
  jnlBlocks: Buffer
  kbytesWritten: number
  /** s_raid_stride / s_raid_stripe_width (raid.ts); zeros when the device is no striped volume. */
  raid: RaidFields
}

export function buildSuperblock(plan: Plan, input: SuperblockInput): Superblock {
  const { geo } = plan
  const hi = (n: number): number => Math.floor(n / 2 ** 32)
  const lo = (n: number): number => n % 2 ** 32
  const time = input.time
  const zero = (n: number): Buffer => Buffer.alloc(n)
  return {
    inodesCount: geo.inodesCount,
    blocksCountLo: lo(geo.blocksCount),
    rBlocksCountLo: lo(geo.rBlocksCount),
    freeBlocksCountLo: lo(plan.freeBlocks),
    freeInodesCount: plan.freeInodes,
    firstDataBlock: geo.firstDataBlock,
    logBlockSize: geo.logBlockSize,
    logClusterSize: geo.logBlockSize,
    blocksPerGroup: geo.blocksPerGroup,
    clustersPerGroup: geo.blocksPerGroup,
    inodesPerGroup: geo.inodesPerGroup,
    mtime: 0,
    wtime: lo(time),
    mntCount: 0,
    // enable_periodic_fsck = 0: no mount-count check (-1 as a u16).
    maxMntCount: 0xffff,
    magic: EXT4_SUPER_MAGIC,
    state: STATE_VALID,
    errors: ERRORS_CONTINUE,
    minorRevLevel: 0,
    lastcheck: lo(time),
    checkinterval: 0,
    creatorOs: 0,
    revLevel: DYNAMIC_REV,
    defResuid: 0,
    defResgid: 0,
    firstIno: FIRST_INO,
    inodeSize: INODE_SIZE,
    blockGroupNr: 0,
    featureCompat: MKFS_FEATURES.compat,
    featureIncompat: MKFS_FEATURES.incompat,
    featureRoCompat: MKFS_FEATURES.roCompat,
    uuid: input.uuid,
    volumeName: input.label,
    lastMounted: zero(64),
    algorithmUsageBitmap: 0,
    preallocBlocks: 0,
    preallocDirBlocks: 0,
    reservedGdtBlocks: geo.reservedGdtBlocks,
    journalUuid: zero(16),
    journalInum: JOURNAL_INO,
    journalDev: 0,
    lastOrphan: 0,
    hashSeed: input.hashSeed,
    defHashVersion: HASH_HALF_MD4,
    jnlBackupType: JNL_BACKUP_BLOCKS,
    descSize: DESC_SIZE,
    defaultMountOpts: DEFM_XATTR_USER_ACL,
    firstMetaBg: 0,
    mkfsTime: lo(time),
    jnlBlocks: input.jnlBlocks,
    blocksCountHi: hi(geo.blocksCount),
    rBlocksCountHi: hi(geo.rBlocksCount),
    freeBlocksCountHi: hi(plan.freeBlocks),
    minExtraIsize: EXTRA_ISIZE,
    wantExtraIsize: EXTRA_ISIZE,
    flags: FLAGS_SIGNED_HASH,
    raidStride: input.raid.raidStride,
    mmpInterval: 0,
    mmpBlock: 0,
    raidStripeWidth: input.raid.raidStripeWidth,
    logGroupsPerFlex: LOG_GROUPS_PER_FLEX,
    checksumType: CHECKSUM_TYPE_CRC32C,
    kbytesWritten: input.kbytesWritten,
    snapshotInum: 0,
    snapshotId: 0,
    snapshotRBlocksCount: 0,
    snapshotList: 0,
    errorCount: 0,
    firstErrorTime: 0,
    firstErrorIno: 0,
    firstErrorBlock: 0,
    firstErrorFunc: zero(32),
    firstErrorLine: 0,
    lastErrorTime: 0,
    lastErrorIno: 0,
    lastErrorLine: 0,
    lastErrorBlock: 0,
    lastErrorFunc: zero(32),
    mountOpts: zero(64),
    usrQuotaInum: 0,
    grpQuotaInum: 0,
    overheadClusters: plan.overhead,
    backupBgs0: 0,
    backupBgs1: 0,
    encryptAlgos: zero(4),
    encryptPwSalt: zero(16),
    lpfIno: 0,
    prjQuotaInum: 0,
    checksumSeed: 0,
    wtimeHi: hi(time),
    mtimeHi: 0,
    mkfsTimeHi: hi(time),
    lastcheckHi: hi(time),
    firstErrorTimeHi: 0,
    lastErrorTimeHi: 0,
    firstErrorErrcode: 0,
    lastErrorErrcode: 0,
    encoding: 0,
    encodingFlags: 0,
    orphanFileInum: 0,
    checksum: 0,
  }
}

/** The superblock as group `group` stores it (s_block_group_nr set in copies), checksummed. */
export function superblockBytes(sb: Superblock, group: number): Buffer {
  const raw = encodeSuperblock({ ...sb, blockGroupNr: group })
  raw.writeUInt32LE(superblockCsum(raw), SUPERBLOCK_CHECKSUM_OFFSET)
  return raw
}

/** The block bitmap of group g: a block past the end of the last group counts as used (padding). */
export function blockBitmap(plan: Plan, g: number): Buffer {
  const { geo } = plan
  const out = Buffer.alloc(geo.blockSize)
  const first = groupFirstBlock(geo, g)
  const n = groupLastBlock(geo, g) - first + 1
  plan.map.copyBits(first, n, out)
  for (let i = n; i < geo.blockSize * 8; i++) out[i >>> 3] = (out[i >>> 3] ?? 0) | (1 << (i & 7))
  return out
}

/** The inode bitmap of group g: inodes 1..11 are in use; bits past inodes_per_group are set (padding). */
export function inodeBitmap(plan: Plan, g: number): Buffer {
  const { geo } = plan
  const out = Buffer.alloc(geo.blockSize, 0xff)
  out.fill(0, 0, geo.inodesPerGroup / 8)
  for (let ino = 1; ino <= FIRST_INO; ino++) {
    const i = ino - 1 - g * geo.inodesPerGroup
    if (i >= 0 && i < geo.inodesPerGroup) out[i >>> 3] = (out[i >>> 3] ?? 0) | (1 << (i & 7))
  }
  return out
}

/** Bitmap checksum: crc32c(seed) over the bits of one group (blocks or inodes per group / 8 bytes). */
function bitmapCsum(seed: number, bitmap: Buffer, bits: number): number {
  return crc32cUpdate(seed, bitmap.subarray(0, bits / 8))
}

/**
 * The descriptor table (descBlocks blocks). Bitmaps of uninitialised groups are not written, and
 * their descriptors carry no bitmap checksum, as mke2fs leaves them.
 */
export function descriptorTable(plan: Plan, seed: number, zeroed: boolean): Buffer {
  const { geo } = plan
  const out = Buffer.alloc(geo.descBlocks * geo.blockSize)
  plan.groups.forEach((gp, g) => {
    const blockCsum = gp.blockUninit ? 0 : bitmapCsum(seed, blockBitmap(plan, g), geo.blocksPerGroup)
    const inodeCsum = gp.inodeUninit ? 0 : bitmapCsum(seed, inodeBitmap(plan, g), geo.inodesPerGroup)
    const flags = (gp.inodeUninit ? BG_INODE_UNINIT : 0) | (gp.blockUninit ? BG_BLOCK_UNINIT : 0) | (zeroed ? BG_INODE_ZEROED : 0)
    const raw = encodeGroupDesc(
      {
        blockBitmap: gp.blockBitmap,
        inodeBitmap: gp.inodeBitmap,
        inodeTable: gp.inodeTable,
        freeBlocksCount: gp.freeBlocks,
        freeInodesCount: gp.freeInodes,
        usedDirsCount: gp.usedDirs,
        flags,
        excludeBitmap: 0,
        blockBitmapCsum: blockCsum,
        inodeBitmapCsum: inodeCsum,
        itableUnused: gp.itableUnused,
        checksum: 0,
      },
      DESC_SIZE,
    )
    raw.writeUInt16LE(groupDescCsum(seed, g, raw), GROUP_DESC_CHECKSUM_OFFSET)
    raw.copy(out, g * DESC_SIZE)
  })
  return out
}
