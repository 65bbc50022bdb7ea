/*
 * i_blocks counts every block an inode owns, data and extent-tree blocks alike, in 512-byte
 * units. The stored form follows the kernel's ext4_inode_blocks_set: 32 bits without huge_file
 * (a larger file is EFBIG), 48 bits with it, and past 2^48 sectors HUGE_FILE_FL switches the unit
 * to file-system blocks.
 */
import { VfsError } from '../../errors.ts'
import { blocksIn512, INODE_FLAGS } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'

const MAX_32 = 2 ** 32 - 1
const MAX_48 = 2 ** 48 - 1

/** Add delta file-system blocks (negative to remove) to inode's i_blocks, in the stored form. */
export function addBlocks(inode: Inode, blockSize: number, hugeFile: boolean, delta: number): void {
  const perBlock = blockSize / 512
  const sectors = blocksIn512(inode, blockSize) + delta * perBlock
  if (sectors < 0) throw new RangeError(`i_blocks would go negative (${sectors} sectors)`)
  if (sectors <= MAX_32) {
    inode.blocks = sectors
    inode.flags &= ~INODE_FLAGS.HUGE_FILE
    return
  }
  if (!hugeFile) throw new VfsError('EFBIG', `${sectors} sectors do not fit i_blocks without huge_file`)
  if (sectors <= MAX_48) {
    inode.blocks = sectors
    inode.flags &= ~INODE_FLAGS.HUGE_FILE
    return
  }
  inode.blocks = sectors / perBlock
  inode.flags |= INODE_FLAGS.HUGE_FILE
}
