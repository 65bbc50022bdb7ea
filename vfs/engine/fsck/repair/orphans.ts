/*
 * The orphan list, finished as the engine finishes it at open (and ext4 at
 * mount, e2fsck before pass 1): an inode with no links freed with its
 * blocks, a linked one cut to its i_size, then s_last_orphan cleared. This is
 * the engine's own cleanupOrphans over its allocator, inode table and extent
 * trees, on in-place transactions. Those parts verify what they read, so a
 * damaged chain, inode or bitmap makes them throw: then nothing is written
 * (the transaction is dropped, not committed) and the list is left, said so.
 */
import { Ext4Allocator } from '../../alloc/ext4-allocator.ts'
import type { BlockDevice } from '../../blockdev/block-device.ts'
import { ExtentTree } from '../../extent/tree.ts'
import { hasFeature } from '../../format/features.ts'
import { blocksCount, blockSize, decodeSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../../format/superblock.ts'
import { cleanupOrphans } from '../../fs/orphans.ts'
import { fileMapOf, inodeStoreOf, perInodeTurns } from '../../fs/part-adapters.ts'
import { InodeTable } from '../../inode/inode-table.ts'
import { csumSeed, hasMetadataCsum } from '../../reader/csum-verifier.ts'
import { DirectTxnManager } from '../../txn/direct-txn.ts'
import { errText } from '../problems.ts'
import { fixed, left } from './record.ts'
import type { Repair } from './record.ts'

export async function releaseOrphans(dev: BlockDevice): Promise<Repair[]> {
  const sb = decodeSuperblock(await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE))
  if (sb.lastOrphan === 0) return []
  const bs = blockSize(sb)
  const txm = new DirectTxnManager(dev, bs)
  try {
    const alloc = await Ext4Allocator.open(txm, dev.size)
    const seed = hasMetadataCsum(sb) ? csumSeed(sb) : undefined
    const tree = new ExtentTree({ blockSize: bs, blocksCount: blocksCount(sb), csumSeed: seed, hugeFile: hasFeature(sb, 'ro_compat', 'huge_file'), allocator: alloc })
    const inodes = inodeStoreOf(new InodeTable(txm, alloc.groups), alloc.geometry.inodeSize)
    const files = fileMapOf(txm, tree, alloc, perInodeTurns())
    // cleanupOrphans waits for its transaction: the in-place manager writes and flushes it then.
    const r = await cleanupOrphans({ txm, alloc, inodes, files, blockSize: bs, metadataCsum: seed !== undefined }, sb.lastOrphan)
    await txm.close()
    return [fixed(1, 'ORPHANS_RELEASED', `orphan list from inode ${sb.lastOrphan}: ${r.freed} inode${r.freed === 1 ? '' : 's'} freed, ${r.truncated} truncated to i_size; list cleared`, { ino: sb.lastOrphan })]
  } catch (err) {
    return [left(1, 'ORPHANS_LEFT', `orphan list from inode ${sb.lastOrphan} not released, nothing written: ${errText(err)}`, { ino: sb.lastOrphan })]
  }
}
