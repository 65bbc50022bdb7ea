/*
 * File data through the block map. Data is not journaled (ordered mode, txn.ts): a write puts
 * the bytes on the device before its handle ends, so the commit that makes the new size and
 * extents durable flushes the data first. Newly allocated blocks are written whole (the rest
 * zero-filled) so nothing a block held before can leak into a file; a block that already
 * belonged to the file is read, patched and written back.
 */
import type { BlockDevice } from '../blockdev/block-device.ts'
import type { Inode } from '../format/inode.ts'
import type { MetaTxn } from '../txn/txn.ts'
import type { FileMap, Run } from './parts.ts'

/** The most one READ returns (a short read is legal, RFC 1813 §3.3.6). */
export const MAX_IO = 16 * 1024 * 1024

export interface DataIo {
  readonly dev: BlockDevice
  readonly blockSize: number
  readonly files: FileMap
}

export async function readData(io: DataIo, ino: number, inode: Inode, offset: number, count: number): Promise<Buffer> {
  const n = Math.max(0, Math.min(inode.size - offset, count, MAX_IO))
  return readDataInto(io, ino, inode, offset, Buffer.allocUnsafe(n))
}

/**
 * Read from `offset` into `out` (which may hold anything: holes are zeroed here); returns the part
 * of `out` filled, short at the end of the file.
 */
export async function readDataInto(io: DataIo, ino: number, inode: Inode, offset: number, out: Buffer): Promise<Buffer> {
  const end = Math.min(inode.size, offset + Math.min(out.length, MAX_IO))
  if (end <= offset) return out.subarray(0, 0)
  const bs = io.blockSize
  const first = Math.floor(offset / bs)
  const last = Math.floor((end - 1) / bs)
  const runs = await io.files.map(ino, inode, first, last - first + 1)
  const reads: Array<Promise<void>> = []
  for (const run of runs) {
    const from = Math.max(offset, run.lblk * bs)
    const to = Math.min(end, (run.lblk + run.len) * bs)
    if (to <= from) continue
    // Holes and unwritten extents read as zeros.
    if (run.pblk === 0) {
      out.fill(0, from - offset, to - offset)
      continue
    }
    const at = run.pblk * bs + (from - run.lblk * bs)
    reads.push(io.dev.readInto(at, out.subarray(from - offset, to - offset)))
  }
  await Promise.all(reads)
  return out.subarray(0, end - offset)
}

/** Write `data` at `offset`, allocating as needed; the caller updates size and times. */
export async function writeData(io: DataIo, h: MetaTxn, ino: number, inode: Inode, offset: number, data: Buffer): Promise<void> {
  const runs = await allocateData(io, h, ino, inode, offset, data.length)
  await writeRuns(io, runs, offset, data)
}

/** The file blocks [first, last] that `length` bytes at `offset` touch. */
export function blockSpan(blockSize: number, offset: number, length: number): { first: number; last: number } {
  return { first: Math.floor(offset / blockSize), last: Math.floor((offset + Math.max(length, 1) - 1) / blockSize) }
}

/**
 * The metadata half of a write: allocate whatever [offset, offset + length) lacks and return its
 * runs. The caller must write the data (`writeRuns`) before the handle ends (ordered mode).
 */
export async function allocateData(io: DataIo, h: MetaTxn, ino: number, inode: Inode, offset: number, length: number): Promise<Run[]> {
  const { first, last } = blockSpan(io.blockSize, offset, length)
  return io.files.allocate(h, ino, inode, first, last - first + 1)
}

/** The data half: `data` at `offset` into the runs `allocateData` gave. */
export async function writeRuns(io: DataIo, runs: readonly Run[], offset: number, data: Buffer): Promise<void> {
  await Promise.all(runs.map((run) => writeRun(io, run, offset, data)))
}

async function writeRun(io: DataIo, run: Run, offset: number, data: Buffer): Promise<void> {
  const bs = io.blockSize
  const end = offset + data.length
  const runStart = run.lblk * bs
  const from = Math.max(offset, runStart)
  const to = Math.min(end, (run.lblk + run.len) * bs)
  if (to <= from) return
  const alignedFrom = Math.floor(from / bs) * bs
  const alignedTo = Math.ceil(to / bs) * bs
  const at = run.pblk * bs + (alignedFrom - runStart)
  if (alignedFrom === from && alignedTo === to) {
    await io.dev.write(at, data.subarray(from - offset, to - offset))
    return
  }
  const buf = Buffer.alloc(alignedTo - alignedFrom)
  if (run.fresh !== true) {
    // Keep the bytes of the partial first and last blocks that this write does not cover.
    if (from !== alignedFrom) await io.dev.readInto(at, buf.subarray(0, bs))
    if (to !== alignedTo && (alignedTo - alignedFrom > bs || from === alignedFrom)) {
      await io.dev.readInto(at + buf.length - bs, buf.subarray(buf.length - bs))
    }
  }
  data.copy(buf, from - alignedFrom, from - offset, to - offset)
  await io.dev.write(at, buf)
}

/**
 * Cut the file to `size` bytes: free whole blocks past it, and zero the tail of the last
 * partial block on the device, so growing the file later reads zeros there (POSIX).
 */
export async function truncateData(io: DataIo, h: MetaTxn, ino: number, inode: Inode, size: number): Promise<void> {
  const bs = io.blockSize
  if (size < inode.size) {
    await io.files.truncate(h, ino, inode, Math.ceil(size / bs))
    if (size % bs !== 0) {
      const [run] = await io.files.map(ino, inode, Math.floor(size / bs), 1)
      if (run !== undefined && run.pblk !== 0) {
        const at = run.pblk * bs
        const block = await io.dev.read(at, bs)
        block.fill(0, size % bs)
        await io.dev.write(at, block)
      }
    }
  }
  inode.size = size
}
