/*
 * Copies one regular file of a Vfs into the tar stream: big reads with the next one already in
 * flight, SHA-256 of the logical content (holes hashed as zeros) computed while reading, and holes
 * found by scanning for zero blocks when the backend says the file uses less than its size.
 */
import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'
import type { Attr, FileRef, ReadResult, Vfs } from '../vfs/types.ts'
import type { TarWriter } from './tar/writer.ts'

const CHUNK = 1024 * 1024
/** Holes are found at this granularity (a filesystem block). */
const HOLE_BLOCK = 4096
const ZERO_BLOCK = Buffer.alloc(HOLE_BLOCK)
const ZEROS = Buffer.alloc(CHUNK)

export interface Region {
  offset: bigint
  length: bigint
}

export interface CopyResult {
  sha256: string
  /** The source came up short or failed (it shrank or vanished): the rest was zero filled. */
  short: boolean
}

/** Reads [offset, offset+count) or less; a loan is copied out and released at once. */
async function readOwned(vfs: Vfs, ref: FileRef, offset: bigint, count: number): Promise<Buffer> {
  const r: ReadResult = await vfs.read(ref, offset, count)
  if (r.release === undefined) return r.data
  const own = Buffer.from(r.data)
  r.release()
  return own
}

/** Data regions of a file whose backend reports holes; null when it is dense or has no holes worth a map. */
export async function findRegions(vfs: Vfs, ref: FileRef, attr: Attr, signal?: AbortSignal): Promise<Region[] | null> {
  if (attr.type !== 'file' || attr.size < BigInt(HOLE_BLOCK) || attr.used >= attr.size) return null
  const regions: Region[] = []
  let cur: Region | null = null
  let off = 0n
  while (off < attr.size) {
    signal?.throwIfAborted()
    const want = attr.size - off > BigInt(CHUNK) ? CHUNK : Number(attr.size - off)
    const data = await readOwned(vfs, ref, off, want)
    if (data.length === 0) break
    for (let i = 0; i < data.length; i += HOLE_BLOCK) {
      const blk = data.subarray(i, Math.min(i + HOLE_BLOCK, data.length))
      const zero = blk.length === HOLE_BLOCK && blk.equals(ZERO_BLOCK)
      const at = off + BigInt(i)
      if (zero) cur = null
      else if (cur === null) {
        cur = { offset: at, length: BigInt(blk.length) }
        regions.push(cur)
      } else cur.length += BigInt(blk.length)
    }
    off += BigInt(data.length)
  }
  let stored = 0n
  for (const r of regions) stored += r.length
  if (stored === attr.size) return null
  // GNU tar ends the map with an empty region at the file's end when the file ends in a hole.
  const last = regions.at(-1)
  if (last === undefined || last.offset + last.length < attr.size) regions.push({ offset: attr.size, length: 0n })
  return regions
}

function hashZeros(h: Hash, n: bigint): void {
  while (n > 0n) {
    const k = n > BigInt(CHUNK) ? CHUNK : Number(n)
    h.update(ZEROS.subarray(0, k))
    n -= BigInt(k)
  }
}

/** Copies `length` bytes from `offset` into the writer; returns where it stopped (short of the end: the source failed). */
async function copyRange(vfs: Vfs, ref: FileRef, offset: bigint, length: bigint, out: TarWriter, h: Hash, signal?: AbortSignal): Promise<bigint> {
  const end = offset + length
  const next = (at: bigint): Promise<ReadResult> => vfs.read(ref, at, end - at > BigInt(CHUNK) ? CHUNK : Number(end - at))
  let off = offset
  let pending: Promise<ReadResult> | null = off < end ? next(off) : null
  while (pending !== null) {
    let r: ReadResult
    try {
      r = await pending
    } catch {
      return off
    }
    if (signal?.aborted === true) {
      r.release?.()
      signal.throwIfAborted()
    }
    let data = r.data
    if (data.length === 0) {
      r.release?.()
      return off
    }
    if (BigInt(data.length) > end - off) data = data.subarray(0, Number(end - off))
    off += BigInt(data.length)
    // The next read runs while this chunk is hashed and written.
    pending = off < end ? next(off) : null
    pending?.catch(() => {})
    h.update(data)
    // A loan goes back when the sink has the bytes, not before: no copy on the way.
    await out.data(data, r.release)
  }
  return off
}

/**
 * Writes the body of a member already begun with `regions` (or dense when null). When the source
 * comes up short the rest is zero filled, and the hash covers those zeros: it is of what the stream holds.
 */
export async function copyFile(vfs: Vfs, ref: FileRef, size: bigint, regions: Region[] | null, out: TarWriter, signal?: AbortSignal): Promise<CopyResult> {
  const h = createHash('sha256')
  let pos = 0n
  let short = false
  for (const r of regions ?? [{ offset: 0n, length: size }]) {
    hashZeros(h, r.offset - pos)
    const reached = await copyRange(vfs, ref, r.offset, r.length, out, h, signal)
    pos = reached
    if (reached < r.offset + r.length) {
      short = true
      break
    }
  }
  hashZeros(h, size - pos)
  if (short) await out.fillRest()
  return { sha256: h.digest('hex'), short }
}
