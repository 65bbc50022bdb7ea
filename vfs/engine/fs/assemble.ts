/*
 * Opening an image as an engine export: replay the journal if the image was not closed cleanly,
 * refuse what we cannot write, then stack the parts (journal → transaction manager → allocator →
 * inode table, extent trees, directories) under the namespace layer.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import { ImageFile } from '../blockdev/image-file.ts'
import { Ext4Allocator } from '../alloc/ext4-allocator.ts'
import { dirFsOf } from '../dir/dir-file.ts'
import { Directories } from '../dir/dir-ops.ts'
import { ExtentTree } from '../extent/tree.ts'
import { FormatError } from '../format/errors.ts'
import { hasFeature, unsupportedFeatures } from '../format/features.ts'
import { blocksCount, blockSize, decodeSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../format/superblock.ts'
import { InodeTable } from '../inode/inode-table.ts'
import { Jbd2Log } from '../jbd2/journal-log.ts'
import { needsRecovery } from '../jbd2/needs-recovery.ts'
import { recover } from '../jbd2/recovery.ts'
import { csumSeed, hasMetadataCsum, metadataCsumVerifier } from '../reader/csum-verifier.ts'
import { NO_VERIFY } from '../reader/verify.ts'
import { Ext4Image } from '../reader/image.ts'
import { JournaledTxnManager } from '../txn/journaled-txn.ts'
import { DirectTxnManager } from '../txn/direct-txn.ts'
import type { TxnManager } from '../txn/txn.ts'
import { EngineVfs } from './engine-vfs.ts'
import type { EngineParts, EngineVfsOptions } from './engine-vfs.ts'
import { cleanupOrphans } from './orphans.ts'
import { engineCaches } from './caches.ts'
import type { BlockCacheOwner } from './caches.ts'
import { dirIndexOf, fileMapOf, inodeStoreOf, perInodeTurns } from './part-adapters.ts'
import { cachedDirIndex, NameCache } from './name-cache.ts'

export interface OpenEngineOptions extends EngineVfsOptions {
  /** Byte limit of the metadata buffer cache (default 256 MiB). */
  cacheBytes?: number
  /** Commit metadata nobody waits for after this long (ext4 commit=5). */
  commitIntervalMs?: number
  /** Told what recovery did at open. */
  onRecovery?: (msg: string) => void
}

export const DEFAULT_CACHE_BYTES = 256 * 2 ** 20

/** What one decoded inode costs in memory (the object, its times and its i_block copy), rounded up. */
const DECODED_INODE_BYTES = 1024

/**
 * Decoded inodes kept, from the cache= limit: an eighth of it (at least 1,024); the blocks get the
 * rest. The inode table blocks are cached as well, so a decoded-inode miss is a decode, not a read.
 */
export function inodeCacheSize(cacheBytes: number): number {
  return Math.max(1024, Math.floor(cacheBytes / 8 / DECODED_INODE_BYTES))
}

/**
 * The name cache's bound, from the cache= limit: a thirty-second of it (8 MiB, some 80,000 names,
 * of the default 256 MiB); the blocks' share is what the inodes and names leave.
 */
export function nameCacheBytes(cacheBytes: number): number {
  return Math.floor(cacheBytes / 32)
}

/** Open the image file or block device at `path` (locked against a second read-write opener). */
export async function openEngine(path: string, opts: OpenEngineOptions = {}): Promise<EngineVfs> {
  const dev = await ImageFile.open(path, { readOnly: opts.readOnly ?? false })
  try {
    return await openEngineOn(dev, opts)
  } catch (err) {
    await dev.close().catch(() => {})
    throw err
  }
}

/** The engine over an open device; closing the engine closes the device. */
export async function openEngineOn(dev: BlockDevice, opts: OpenEngineOptions = {}): Promise<EngineVfs> {
  const readOnly = opts.readOnly ?? dev.readOnly
  if (await needsRecovery(dev)) {
    if (dev.readOnly) throw new FormatError('EXT4_NEEDS_RECOVERY', 'the journal needs recovery and the image is open read-only')
    const r = await recover(dev)
    opts.onRecovery?.(`journal recovery: ${r.transactions} transactions, ${r.replayed} blocks replayed, ${r.revokeHits} revoked${r.failedCommit === undefined ? '' : `, transaction ${r.failedCommit} incomplete and dropped`}`)
  }
  // The reader checks magic, checksums, geometry and the features nobody may read past.
  const raw = await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
  await Ext4Image.open(dev)
  const sb = decodeSuperblock(raw)
  const unsupported = unsupportedFeatures(sb)
  if (unsupported.length > 0 && !readOnly) {
    throw new FormatError('EXT4_UNSUPPORTED_FEATURE', `cannot write an image with ${unsupported.join(' ')} (open it read-only)`)
  }
  const bs = blockSize(sb)
  const cacheBytes = opts.cacheBytes ?? DEFAULT_CACHE_BYTES
  const inodeCache = inodeCacheSize(cacheBytes)
  const names = new NameCache(nameCacheBytes(cacheBytes))
  const blockCacheBytes = Math.max(cacheBytes - inodeCache * DECODED_INODE_BYTES - names.limit, cacheBytes / 2)
  let txm: TxnManager & BlockCacheOwner
  // Read-only: nothing is journaled, and the blocks read are bounded by the same share of cache=.
  if (readOnly) txm = new DirectTxnManager(dev, bs, blockCacheBytes)
  else {
    if (!hasFeature(sb, 'compat', 'has_journal')) throw new FormatError('EXT4_UNSUPPORTED_FEATURE', 'the image has no journal (has_journal): the engine writes only journaled images')
    const log = await Jbd2Log.open(dev)
    txm = new JournaledTxnManager(dev, log, {
      blockSize: bs,
      cacheBytes: blockCacheBytes,
      ...(opts.commitIntervalMs === undefined ? {} : { commitIntervalMs: opts.commitIntervalMs }),
    })
  }
  const alloc = await Ext4Allocator.open(txm, dev.size)
  const inodes = new InodeTable(txm, alloc.groups, { cacheSize: inodeCache })
  const seed = hasMetadataCsum(sb) ? csumSeed(sb) : undefined
  const tree = new ExtentTree({ blockSize: bs, blocksCount: blocksCount(sb), csumSeed: seed, hugeFile: hasFeature(sb, 'ro_compat', 'huge_file'), allocator: alloc })
  const dirs = new Directories(dirFsOf(sb))
  const geo = alloc.geometry
  const turns = perInodeTurns()
  const parts: EngineParts = {
    dev,
    txm,
    alloc,
    inodes: inodeStoreOf(inodes, geo.inodeSize),
    files: fileMapOf(txm, tree, alloc, turns),
    dirs: cachedDirIndex(dirIndexOf(txm, dirs, tree, alloc, turns, seed === undefined ? NO_VERIFY : metadataCsumVerifier(sb)), names, dirs.fs.fileType),
    blockSize: bs,
    caches: engineCaches(txm, inodes, DECODED_INODE_BYTES, names),
    firstIno: sb.firstIno,
    inodesCount: geo.inodesCount,
    // 2^32 logical blocks per file (EXT_MAX_BLOCKS), as ext4 with extents.
    maxFileSize: BigInt(bs) * (2n ** 32n - 1n),
    statfs: () => Promise.resolve({
      blocks: geo.blocksCount,
      freeBlocks: Math.max(0, alloc.groups.freeBlocks - alloc.busyBlocks),
      reservedBlocks: geo.reservedBlocks,
      inodes: geo.inodesCount,
      freeInodes: alloc.groups.freeInodes,
    }),
    close: async () => {
      try {
        await txm.close()
      } finally {
        await dev.close()
      }
    },
  }
  if (sb.lastOrphan !== 0 && !readOnly) {
    const r = await cleanupOrphans({ txm, alloc, inodes: parts.inodes, files: parts.files, blockSize: bs, metadataCsum: seed !== undefined }, sb.lastOrphan)
    opts.onRecovery?.(`orphan list: ${r.freed} inodes freed, ${r.truncated} truncated`)
  }
  return EngineVfs.open(parts, { ...opts, readOnly })
}
