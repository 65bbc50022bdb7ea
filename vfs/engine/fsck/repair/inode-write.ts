/*
 * Changing one inode from fsck: its record in the inode table (group and slot
 * from the descriptor pass 1 decoded), decoded, changed, encoded back with
 * the format/ encoder and checksummed as the engine's inode table does.
 */
import { hasFeature } from '../../format/features.ts'
import { decodeInode, encodeInode } from '../../format/inode.ts'
import type { Inode } from '../../format/inode.ts'
import { setInodeCsum } from '../../inode/inode-table.ts'
import { csumSeed } from '../../reader/csum-verifier.ts'
import type { MetaTxn } from '../../txn/txn.ts'
import type { FsckContext } from '../context.ts'

/** Block and byte offset of inode ino's record, or undefined when its group's table is outside the file system. */
export function inodePlace(ctx: FsckContext, ino: number): { block: number; at: number } | undefined {
  const { sb, blockSize: bs, inodeSize: isz } = ctx.img
  const g = Math.floor((ino - 1) / sb.inodesPerGroup)
  const gd = ctx.groups[g]
  if (gd === undefined) return undefined
  const byte = gd.inodeTable * bs + ((ino - 1) % sb.inodesPerGroup) * isz
  const block = Math.floor(byte / bs)
  if (gd.inodeTable < sb.firstDataBlock || block >= ctx.img.blocksCount) return undefined
  return { block, at: byte - block * bs }
}

/**
 * Change inode ino (mutate gets it decoded; undefined from mutate means no
 * change), re-encode it and store its checksum. rawOnly skips the decode and
 * only re-checksums the record as it is. False when the inode cannot be placed.
 */
export async function updateInode(ctx: FsckContext, h: MetaTxn, ino: number, mutate?: (inode: Inode) => void): Promise<boolean> {
  const place = inodePlace(ctx, ino)
  if (place === undefined) return false
  const isz = ctx.img.inodeSize
  const buf = await h.get(place.block)
  const raw = buf.subarray(place.at, place.at + isz)
  const hugeFile = hasFeature(ctx.img.sb, 'ro_compat', 'huge_file')
  let generation = raw.readUInt32LE(0x64)
  if (mutate !== undefined) {
    const inode = decodeInode(raw, 0, isz, hugeFile)
    mutate(inode)
    encodeInode(inode, raw, 0, isz, hugeFile)
    generation = inode.generation
  }
  if (ctx.csum) setInodeCsum(raw, csumSeed(ctx.img.sb), ino, generation)
  h.dirty(place.block)
  return true
}

/** Write inode as the new inode ino: its slot zeroed first (a free slot may hold anything), then encoded and checksummed. */
export async function writeNewInode(ctx: FsckContext, h: MetaTxn, ino: number, inode: Inode): Promise<boolean> {
  const place = inodePlace(ctx, ino)
  if (place === undefined) return false
  const isz = ctx.img.inodeSize
  const buf = await h.get(place.block)
  const raw = buf.subarray(place.at, place.at + isz)
  raw.fill(0)
  encodeInode(inode, raw, 0, isz, hasFeature(ctx.img.sb, 'ro_compat', 'huge_file'))
  if (ctx.csum) setInodeCsum(raw, csumSeed(ctx.img.sb), ino, inode.generation)
  h.dirty(place.block)
  return true
}

/**
 * Change bytes of inode ino's record that the decoded Inode does not carry (its in-body extended
 * attributes) or carries rounded (a value inode's count in i_ctime), then checksum it. False when
 * the inode cannot be placed.
 */
export async function patchInodeRaw(ctx: FsckContext, h: MetaTxn, ino: number, patch: (raw: Buffer) => void): Promise<boolean> {
  const place = inodePlace(ctx, ino)
  if (place === undefined) return false
  const buf = await h.get(place.block)
  const raw = buf.subarray(place.at, place.at + ctx.img.inodeSize)
  patch(raw)
  if (ctx.csum) setInodeCsum(raw, csumSeed(ctx.img.sb), ino, raw.readUInt32LE(0x64))
  h.dirty(place.block)
  return true
}
