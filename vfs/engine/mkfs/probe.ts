/*
 * Does a device already hold a file system? mkfs asks before it overwrites
 * one, as mke2fs does (through blkid) unless forced. We know the signatures
 * of the file systems an image or disk here is likely to hold; anything else
 * counts as free space.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import { hasFeature } from '../format/features.ts'
import { decodeSuperblock, EXT4_SUPER_MAGIC, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../format/superblock.ts'

export interface FoundFileSystem {
  /** ext2, ext3, ext4, xfs or btrfs. */
  type: string
  /** The file system's UUID as text, where its superblock has one we read. */
  uuid?: string
}

/** Where each foreign signature lives: offset and bytes. */
const SIGNATURES: ReadonlyArray<{ type: string; offset: number; magic: Buffer }> = [
  { type: 'xfs', offset: 0, magic: Buffer.from('XFSB') },
  // btrfs: the superblock at 64 KiB, its magic 64 bytes in.
  { type: 'btrfs', offset: 0x10040, magic: Buffer.from('_BHRfS_M') },
]

export function uuidText(u: Uint8Array): string {
  const h = Buffer.from(u).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

export async function probeFileSystem(dev: BlockDevice): Promise<FoundFileSystem | undefined> {
  if (dev.size >= SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) {
    const sb = decodeSuperblock(await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE))
    if (sb.magic === EXT4_SUPER_MAGIC) {
      // The name blkid gives: ext4 for any ext4-only feature, ext3 with a journal, ext2 otherwise.
      const ext4 = sb.featureIncompat & ~0x7 || sb.featureRoCompat & ~0x7
      const type = ext4 ? 'ext4' : hasFeature(sb, 'compat', 'has_journal') ? 'ext3' : 'ext2'
      return { type, uuid: uuidText(sb.uuid) }
    }
  }
  for (const s of SIGNATURES) {
    if (dev.size < s.offset + s.magic.length) continue
    if ((await dev.read(s.offset, s.magic.length)).equals(s.magic)) return { type: s.type }
  }
  return undefined
}
