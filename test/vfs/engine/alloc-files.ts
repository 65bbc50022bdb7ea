/*
 * Turning allocations into files e2fsck and the kernel can judge: a regular-file inode whose
 * extent root (up to 4 extents in i_block) covers the blocks the allocator gave, each block
 * holding distinct data, and an entry for it in the root directory's first block (mkfs leaves
 * slack after lost+found). Written through the engine's InodeTable and a MetaTxn.
 */
import { crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import { DIR_TAIL_SIZE, dirRecLen, encodeDirEntry, FT, recLenFromDisk } from '../../../vfs/engine/format/dirent.ts'
import { decodeExtentNode, encodeExtent, encodeExtentHeader, EXTENT_HEADER_SIZE, EXTENT_ENTRY_SIZE, EXTENT_MAGIC } from '../../../vfs/engine/format/extent.ts'
import { I_BLOCK_SIZE, S_IFREG } from '../../../vfs/engine/format/inode.ts'
import { inodeSeed } from '../../../vfs/engine/reader/csum-verifier.ts'
import { newInode } from '../../../vfs/engine/inode/new-inode.ts'
import type { InodeTable } from '../../../vfs/engine/inode/inode-table.ts'
import type { Ext4Allocator } from '../../../vfs/engine/alloc/ext4-allocator.ts'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import type { MetaTxn } from '../../../vfs/engine/txn/txn.ts'

export interface Run {
  start: number
  count: number
}

export interface TestFile {
  name: string
  ino: number
  data: Buffer
  runs: Run[]
}

/** Up to 4 runs (an extent root's room) totalling at most blocks; stops early at ENOSPC (err set). */
export async function allocRuns(alloc: Ext4Allocator, h: MetaTxn, goal: number, blocks: number): Promise<{ runs: Run[]; err?: Error }> {
  const runs: Run[] = []
  let total = 0
  while (total < blocks) {
    const last = runs[runs.length - 1]
    let r: Run
    try {
      r = await alloc.allocBlocks(h, last !== undefined ? last.start + last.count : goal, blocks - total)
    } catch (err) {
      return { runs, err: err as Error }
    }
    total += r.count
    // An initialised extent holds at most 32768 blocks (EXT_INIT_MAX_LEN).
    if (last !== undefined && last.start + last.count === r.start && last.count + r.count <= 32768) last.count += r.count
    else runs.push(r)
    if (runs.length === 4) break
  }
  return { runs }
}

/** Distinct contents: each block starts with the file's name and the block's index, then seeded bytes. */
function contents(name: string, blocks: number, bs: number, bytes: (n: number) => Buffer): Buffer {
  const size = (blocks - 1) * bs + 1 + (bytes(2).readUInt16LE(0) % bs)
  const data = bytes(size)
  for (let i = 0; i < blocks; i++) Buffer.from(`${name}:${i}:`).copy(data, i * bs, 0, Math.min(64, size - i * bs))
  return data
}

/** Writes the file for runs (data to the device, inode and root entry through h); returns it. */
export async function writeFile(
  deps: { alloc: Ext4Allocator; table: InodeTable; dev: BlockDevice },
  h: MetaTxn,
  ino: number,
  name: string,
  runs: Run[],
  bytes: (n: number) => Buffer,
): Promise<TestFile> {
  const geo = deps.alloc.geometry
  const bs = geo.blockSize
  const blocks = runs.reduce((n, r) => n + r.count, 0)
  const data = contents(name, blocks, bs, bytes)
  const padded = Buffer.alloc(blocks * bs)
  data.copy(padded)
  const root = Buffer.alloc(I_BLOCK_SIZE)
  encodeExtentHeader({ magic: EXTENT_MAGIC, entries: runs.length, max: 4, depth: 0, generation: 0 }).copy(root)
  let lblk = 0
  for (const [i, r] of runs.entries()) {
    // Ordered mode: the data is on the device before the transaction that points at it ends.
    await deps.dev.write(r.start * bs, padded.subarray(lblk * bs, (lblk + r.count) * bs))
    encodeExtent({ block: lblk, len: r.count, start: r.start, uninit: false }).copy(root, EXTENT_HEADER_SIZE + i * EXTENT_ENTRY_SIZE)
    lblk += r.count
  }
  const inode = newInode({ mode: S_IFREG | 0o644, uid: 0, gid: 0 }, geo.inodeSize)
  inode.block = root
  inode.size = data.length
  inode.blocks = (blocks * bs) / 512
  await deps.table.put(h, ino, inode, true)
  await addRootEntry(deps, h, name, ino)
  return { name, ino, data, runs }
}

/** Splits the last entry of the root directory's first block to make room for name. */
export async function addRootEntry(deps: { alloc: Ext4Allocator; table: InodeTable }, h: MetaTxn, name: string, ino: number, fileType: number = FT.REG_FILE): Promise<void> {
  const bs = deps.alloc.geometry.blockSize
  const root = await deps.table.get(2, h)
  const first = decodeExtentNode(root.block, I_BLOCK_SIZE, 'root').extents[0]
  if (first === undefined) throw new Error('root has no blocks')
  const block = first.start
  const buf = await h.get(block)
  const csum = deps.alloc.groups.metadataCsum
  const end = csum ? bs - DIR_TAIL_SIZE : bs
  let off = 0
  for (;;) {
    const recLen = recLenFromDisk(buf.readUInt16LE(off + 4), bs)
    if (off + recLen >= end) break
    off += recLen
  }
  const used = dirRecLen(buf.readUInt8(off + 6))
  const nameBuf = Buffer.from(name)
  if (end - off - used < dirRecLen(nameBuf.length)) throw new Error(`root's first block is full (adding ${name})`)
  buf.writeUInt16LE(used, off + 4)
  encodeDirEntry({ inode: ino, recLen: end - off - used, fileType, name: nameBuf }, bs).copy(buf, off + used)
  if (csum) buf.writeUInt32LE(crc32cUpdate(inodeSeed(deps.alloc.groups.seed, 2, root.generation), buf.subarray(0, end)), end + 8)
  h.dirty(block)
}
