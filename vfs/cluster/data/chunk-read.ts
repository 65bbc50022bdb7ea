/*
 * Filling a buffer from a chunk's merged segments: zeros stay zeros, each
 * slice range is read block by block (a block read is a range GET, or a
 * cache hit) and copied into place.
 */
import { blockKey, blockLength } from './keys.ts'
import type { Segment } from './read-merge.ts'
import { parallel } from './upload.ts'

/** Bytes [from, from + length) of block `key`, which is `blockLen` bytes long. */
export type BlockReader = (key: string, blockLen: number, from: number, length: number) => Promise<Buffer>

/**
 * Copy the data of `segs` into `out`, whose byte 0 is chunk position
 * `outPos` (segments must lie within [outPos, outPos + out.length)).
 */
export async function readSegments(segs: readonly Segment[], out: Buffer, outPos: number, blockSize: number, read: BlockReader, concurrency: number): Promise<void> {
  const pieces: { key: string; blockLen: number; from: number; length: number; at: number }[] = []
  for (const s of segs) {
    if (s.id === 0n || s.len === 0) continue
    const first = Math.floor(s.off / blockSize)
    const last = Math.floor((s.off + s.len - 1) / blockSize)
    for (let i = first; i <= last; i++) {
      const blockStart = i * blockSize
      const a = Math.max(s.off, blockStart)
      const b = Math.min(s.off + s.len, blockStart + blockSize)
      const blockLen = blockLength(s.size, i, blockSize)
      pieces.push({ key: blockKey(s.id, i, blockLen), blockLen, from: a - blockStart, length: b - a, at: s.pos + (a - s.off) - outPos })
    }
  }
  await parallel(pieces, concurrency, async (p) => {
    const data = await read(p.key, p.blockLen, p.from, p.length)
    data.copy(out, p.at, 0, p.length)
  })
}

/** The blocks (key and length) that hold the data of `segs`, each once, in order. */
export function blocksOf(segs: readonly Segment[], blockSize: number): { key: string; blockLen: number }[] {
  const out: { key: string; blockLen: number }[] = []
  const seen = new Set<string>()
  for (const s of segs) {
    if (s.id === 0n || s.len === 0) continue
    const first = Math.floor(s.off / blockSize)
    const last = Math.floor((s.off + s.len - 1) / blockSize)
    for (let i = first; i <= last; i++) {
      const blockLen = blockLength(s.size, i, blockSize)
      const key = blockKey(s.id, i, blockLen)
      if (seen.has(key)) continue
      seen.add(key)
      out.push({ key, blockLen })
    }
  }
  return out
}
