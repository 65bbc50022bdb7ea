/*
 * The file system's needs_recovery flag (INCOMPAT 0x4 in the ext4 superblock): ext4 sets it
 * durably before the first transaction reaches the log and clears it only once the log is empty,
 * so a kernel or e2fsck that finds it set knows to look at the journal. The superblock may itself
 * be a journaled block, so this always re-reads it from the device before changing the one bit.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import { FormatError } from '../format/errors.ts'
import { INCOMPAT, RO_COMPAT } from '../format/features.ts'
import { EXT4_SUPER_MAGIC, SUPERBLOCK_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../format/superblock.ts'
import { superblockCsum } from '../reader/csum-verifier.ts'

const MAGIC_OFFSET = 0x38
const INCOMPAT_OFFSET = 0x60
const RO_COMPAT_OFFSET = 0x64

/** Set or clear needs_recovery (written, not flushed: the caller orders it with its flushes). */
export async function setNeedsRecovery(dev: BlockDevice, on: boolean): Promise<void> {
  const raw = await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
  if (raw.readUInt16LE(MAGIC_OFFSET) !== EXT4_SUPER_MAGIC) throw new FormatError('EXT4_BAD_MAGIC', 'no ext4 superblock at byte 1024')
  const csum = (raw.readUInt32LE(RO_COMPAT_OFFSET) & RO_COMPAT.metadata_csum) !== 0
  if (csum && superblockCsum(raw) !== raw.readUInt32LE(SUPERBLOCK_CHECKSUM_OFFSET)) {
    throw new FormatError('EXT4_BAD_CHECKSUM', 'superblock checksum does not match; not changing needs_recovery')
  }
  const incompat = raw.readUInt32LE(INCOMPAT_OFFSET)
  const want = on ? (incompat | INCOMPAT.needs_recovery) >>> 0 : incompat & ~INCOMPAT.needs_recovery
  if (want === incompat) return
  raw.writeUInt32LE(want, INCOMPAT_OFFSET)
  if (csum) raw.writeUInt32LE(superblockCsum(raw), SUPERBLOCK_CHECKSUM_OFFSET)
  await dev.write(SUPERBLOCK_OFFSET, raw)
}

export async function needsRecovery(dev: BlockDevice): Promise<boolean> {
  const raw = await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
  return (raw.readUInt32LE(INCOMPAT_OFFSET) & INCOMPAT.needs_recovery) !== 0
}
