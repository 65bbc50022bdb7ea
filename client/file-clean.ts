/*
 * How writes meet the clean block cache: a cached block is patched with
 * what is written into it (the cache always shows this client's view), and
 * a block written whole, or from its start to the end of the file, joins the
 * cache when it is sent, without a READ (written pages stay in Linux's page
 * cache too). A block that joins this way is the very buffer its WRITE
 * sends, not a copy: it is marked shared, and a later write into it patches
 * a copy (a segment must never change under its WRITE or a re-send).
 */
import type { BlockCache } from './cache/block-cache.ts'
import { stampOf } from './cache/block-cache.ts'
import type { AttrCache } from './cache/attr-cache.ts'
import type { DirtyBlock, FileState } from './file-state.ts'

/** Cached block buffers that something else (a WRITE segment) also holds: never written in place. */
const shared = new WeakSet<Buffer>()

export function patchClean(blocks: BlockCache, f: FileState, index: number, inBlock: number, chunk: Buffer): void {
  const c = blocks.get(f.key, index)
  if (c === undefined) return
  let data = c.data
  if (inBlock + chunk.length > data.length || shared.has(data)) {
    data = Buffer.alloc(Math.max(inBlock + chunk.length, c.data.length))
    c.data.copy(data)
  }
  chunk.copy(data, inBlock)
  if (data !== c.data) blocks.replace(f.key, index, data)
}

export function keepClean(blocks: BlockCache, attrs: AttrCache, f: FileState, b: DirtyBlock): void {
  const r = b.ranges[0]
  if (b.ranges.length !== 1 || r?.start !== 0 || blocks.has(f.key, b.index)) return
  const bs = blocks.blockSize
  const a = attrs.peek(f.fh)
  if (r.end < bs && BigInt(b.index * bs + r.end) < f.sizeWith(a?.size)) return
  const data = b.buf.subarray(0, r.end)
  shared.add(data)
  blocks.set(f.key, b.index, { data, readahead: false }, a === undefined ? undefined : stampOf(a), true)
}
