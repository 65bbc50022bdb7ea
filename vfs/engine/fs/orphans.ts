/*
 * The orphan list (s_last_orphan, chained through i_dtime): inodes a crash left with no name but
 * still holding blocks (unlinked while in use), or cut short in the middle of a truncate. At open,
 * as ext4 does at mount (ext4_orphan_cleanup), each is finished: an inode with no links left is
 * freed with its blocks, a linked one loses the blocks past its size. Then the list is emptied.
 */
import { corrupt } from '../format/errors.ts'
import { INODE_FLAGS, S_IFDIR, S_IFMT } from '../format/inode.ts'
import { superblockCsum } from '../reader/csum-verifier.ts'
import { SUPERBLOCK_CHECKSUM_OFFSET } from '../format/superblock.ts'
import type { Ext4Allocator } from '../alloc/ext4-allocator.ts'
import type { TxnManager } from '../txn/txn.ts'
import type { FileMap, InodeStore } from './parts.ts'

const S_LAST_ORPHAN = 0xe8

export interface OrphanParts {
  txm: TxnManager
  alloc: Ext4Allocator
  inodes: InodeStore
  files: FileMap
  blockSize: number
  metadataCsum: boolean
}

/** Finish every inode on the orphan list; returns how many were freed and truncated. */
export async function cleanupOrphans(p: OrphanParts, first: number): Promise<{ freed: number; truncated: number }> {
  const geo = p.alloc.geometry
  let freed = 0
  let truncated = 0
  const seen = new Set<number>()
  const h = await p.txm.begin()
  try {
    for (let ino = first; ino !== 0; ) {
      if (ino < 1 || ino > geo.inodesCount || seen.has(ino)) throw corrupt(`orphan list: inode ${ino} ${seen.has(ino) ? 'twice (a loop)' : 'out of range'}`)
      seen.add(ino)
      const inode = await p.inodes.read(ino)
      const next = inode.dtime
      const extents = (inode.flags & INODE_FLAGS.EXTENTS) !== 0
      if (inode.linksCount === 0) {
        if ((inode.mode & S_IFMT) === S_IFDIR && extents) {
          // A directory's blocks are journaled metadata: revoked, as the engine does at rmdir.
          for (const run of await p.files.map(ino, inode, 0, Math.ceil(inode.size / p.blockSize))) {
            if (run.pblk !== 0) for (let i = 0; i < run.len; i++) h.revoke(run.pblk + i)
          }
        }
        if (extents) await p.files.truncate(h, ino, inode, 0)
        inode.size = 0
        inode.dtime = Math.floor(Date.now() / 1000)
        await p.inodes.write(h, ino, inode)
        await p.alloc.freeInode(h, ino, (inode.mode & S_IFMT) === S_IFDIR)
        freed++
      } else {
        if (extents) await p.files.truncate(h, ino, inode, Math.ceil(inode.size / p.blockSize))
        inode.dtime = 0
        await p.inodes.write(h, ino, inode)
        truncated++
      }
      ino = next
    }
    const sbBlock = geo.sbBlock
    const buf = await h.get(sbBlock)
    const sb = buf.subarray(geo.sbOffset, geo.sbOffset + 1024)
    sb.writeUInt32LE(0, S_LAST_ORPHAN)
    if (p.metadataCsum) sb.writeUInt32LE(superblockCsum(sb), SUPERBLOCK_CHECKSUM_OFFSET)
    h.dirty(sbBlock)
  } finally {
    p.txm.end(h)
  }
  await p.txm.waitDurable(h.tid)
  return { freed, truncated }
}
