/*
 * The contents mkfs gives its inodes: the root directory, lost+found (empty
 * blocks preallocated so fsck can relink orphans without allocating), the
 * resize inode's block map of the reserved GDT blocks, and the inodes
 * themselves (bad blocks 1, root 2, resize 7, journal 8, lost+found 11).
 */
import { crc32cUpdate } from '../crc32c.ts'
import { DIR_TAIL_SIZE, encodeDirEntry, encodeDirTail, FT } from '../format/dirent.ts'
import { S_IFDIR, S_IFREG } from '../format/inode.ts'
import { inodeSeed } from '../reader/csum-verifier.ts'
import { backupGroups, FIRST_INO } from './geometry.ts'
import type { Geometry } from './geometry.ts'
import { encodeInode, extentIndexRoot, extentLeaf, extentRoot, EXTENTS_FL } from './inode-bytes.ts'
import type { NewInode } from './inode-bytes.ts'
import { JOURNAL_INO, LPF_INO, RESIZE_INO, ROOT_INO } from './place.ts'
import type { Plan } from './place.ts'

/** ext2 block-map slots: 12 direct, then indirect, double-indirect (13), triple. */
const NDIR_BLOCKS = 12
const DIND_BLOCK = 13

/** A directory block of ino: the entries, then the checksum tail (crc32c chained from the inode's seed, generation 0). */
function dirBlock(ino: number, bs: number, seed: number, entries: ReadonlyArray<{ inode: number; name: string; fileType: number }>): Buffer {
  const out = Buffer.alloc(bs)
  let at = 0
  entries.forEach((e, i) => {
    const name = Buffer.from(e.name)
    // The last entry spans the block up to the tail.
    const recLen = i === entries.length - 1 ? bs - DIR_TAIL_SIZE - at : (8 + name.length + 3) & ~3
    encodeDirEntry({ inode: e.inode, recLen, fileType: e.fileType, name }, bs).copy(out, at)
    at += recLen
  })
  if (entries.length === 0) encodeDirEntry({ inode: 0, recLen: bs - DIR_TAIL_SIZE, fileType: 0, name: Buffer.alloc(0) }, bs).copy(out, 0)
  const sum = crc32cUpdate(inodeSeed(seed, ino, 0), out.subarray(0, bs - DIR_TAIL_SIZE))
  encodeDirTail(sum).copy(out, bs - DIR_TAIL_SIZE)
  return out
}

/** Blocks to write for the root directory and lost+found. */
export function directoryBlocks(plan: Plan, seed: number): Map<number, Buffer> {
  const bs = plan.geo.blockSize
  const out = new Map<number, Buffer>()
  out.set(plan.rootBlock, dirBlock(ROOT_INO, bs, seed, [
    { inode: ROOT_INO, name: '.', fileType: FT.DIR },
    { inode: ROOT_INO, name: '..', fileType: FT.DIR },
    { inode: LPF_INO, name: 'lost+found', fileType: FT.DIR },
  ]))
  const lpf = plan.lpfBlocks
  out.set(lpf.start, dirBlock(LPF_INO, bs, seed, [
    { inode: LPF_INO, name: '.', fileType: FT.DIR },
    { inode: ROOT_INO, name: '..', fileType: FT.DIR },
  ]))
  for (let i = 1; i < lpf.len; i++) out.set(lpf.start + i, dirBlock(LPF_INO, bs, seed, []))
  return out
}

/**
 * The resize inode's blocks (res_gdt.c ext2fs_create_resize_inode): its double-indirect block lists
 * the primary reserved GDT blocks, and each of those lists where its copies lie in the backup groups.
 * The copies themselves stay as they are (zero): online resize fills them.
 */
export function resizeBlocks(geo: Geometry, dind: number): { blocks: Map<number, Buffer>; count: number } {
  const bs = geo.blockSize
  const apb = bs / 4
  const backups = backupGroups(geo.groupCount)
  const dindBuf = Buffer.alloc(bs)
  const blocks = new Map<number, Buffer>([[dind, dindBuf]])
  let count = 1
  for (let rsv = 0; rsv < geo.reservedGdtBlocks; rsv++) {
    const gdtBlk = geo.firstDataBlock + 1 + geo.descBlocks + rsv
    dindBuf.writeUInt32LE(gdtBlk, ((geo.descBlocks + rsv) % apb) * 4)
    const list = Buffer.alloc(bs)
    backups.forEach((grp, i) => list.writeUInt32LE(gdtBlk + grp * geo.blocksPerGroup, i * 4))
    blocks.set(gdtBlk, list)
    count += 1 + backups.length
  }
  return { blocks, count }
}

/** Every inode mkfs writes, by number, as bytes. */
export function systemInodes(plan: Plan, time: number, resizeCount: number, seed: number): Map<number, Buffer> {
  const { geo } = plan
  const bs = geo.blockSize
  const per512 = bs / 512
  const isz = 256
  const inodes = new Map<number, NewInode>()
  const lpf = plan.lpfBlocks
  inodes.set(1, { mode: 0, linksCount: 0, size: 0, blocks512: 0, flags: 0, block: Buffer.alloc(60), extraIsize: 0, time })
  inodes.set(ROOT_INO, {
    mode: S_IFDIR | 0o755, linksCount: 3, size: bs, blocks512: per512, flags: EXTENTS_FL,
    block: extentRoot([{ block: 0, start: plan.rootBlock, len: 1 }]), extraIsize: 32, time,
  })
  const resizeMap = Buffer.alloc(60)
  resizeMap.writeUInt32LE(plan.resizeDind, DIND_BLOCK * 4)
  const apb = bs / 4
  inodes.set(RESIZE_INO, {
    mode: S_IFREG | 0o600, linksCount: 1, size: (apb * apb + apb + NDIR_BLOCKS) * bs, blocks512: resizeCount * per512, flags: 0,
    block: resizeMap, extraIsize: 32, time,
  })
  inodes.set(JOURNAL_INO, {
    mode: S_IFREG | 0o600, linksCount: 1, size: geo.journalBlocks * bs,
    blocks512: (geo.journalBlocks + (plan.journalLeaf === undefined ? 0 : 1)) * per512, flags: EXTENTS_FL,
    block: journalIBlock(plan), extraIsize: 32, time,
  })
  inodes.set(LPF_INO, {
    mode: S_IFDIR | 0o700, linksCount: 2, size: lpf.len * bs, blocks512: lpf.len * per512, flags: EXTENTS_FL,
    block: extentRoot([lpf]), extraIsize: 32, time,
  })
  // The other reserved inodes are written empty but checksummed, as mke2fs's write_reserved_inodes does.
  for (let ino = 1; ino < FIRST_INO; ino++) {
    if (!inodes.has(ino)) inodes.set(ino, { mode: 0, linksCount: 0, size: 0, blocks512: 0, flags: 0, block: Buffer.alloc(60), extraIsize: 0, time: 0 })
  }
  const out = new Map<number, Buffer>()
  for (const [ino, n] of inodes) out.set(ino, encodeInode(ino, n, isz, seed))
  return out
}

/** The journal inode's i_block: its extents, or an index to the leaf holding them. */
function journalIBlock(plan: Plan): Buffer {
  return plan.journalLeaf === undefined ? extentRoot(plan.journal) : extentIndexRoot(plan.journalLeaf, plan.journal)
}

/** The journal's extent leaf block, when it has one. */
export function journalLeafBlocks(plan: Plan, seed: number): Map<number, Buffer> {
  const leaf = plan.journalLeaf
  return new Map(leaf === undefined ? [] : [[leaf, extentLeaf(JOURNAL_INO, plan.journal, plan.geo.blockSize, seed)]])
}

/** s_jnl_blocks: the journal inode's i_block, then i_size_high and i_size. */
export function journalBackup(plan: Plan): Buffer {
  const out = Buffer.alloc(68)
  journalIBlock(plan).copy(out, 0)
  const size = plan.geo.journalBlocks * plan.geo.blockSize
  out.writeUInt32LE(Math.floor(size / 2 ** 32), 60)
  out.writeUInt32LE(size % 2 ** 32, 64)
  return out
}

/**
 * The inode table blocks holding inodes 1..s_first_ino, filled in (the rest of those blocks zero):
 * a map from block number to bytes.
 */
export function inodeTableBlocks(plan: Plan, inodes: Map<number, Buffer>): Map<number, Buffer> {
  const { geo } = plan
  const bs = geo.blockSize
  const perBlock = bs / 256
  const out = new Map<number, Buffer>()
  for (let ino = 1; ino <= FIRST_INO; ino++) {
    const g = Math.floor((ino - 1) / geo.inodesPerGroup)
    const index = (ino - 1) % geo.inodesPerGroup
    const gp = plan.groups[g]
    if (gp === undefined) throw new Error(`inode ${ino} beyond the groups`)
    const block = gp.inodeTable + Math.floor(index / perBlock)
    let buf = out.get(block)
    if (buf === undefined) {
      buf = Buffer.alloc(bs)
      out.set(block, buf)
    }
    inodes.get(ino)?.copy(buf, (index % perBlock) * 256)
  }
  return out
}
