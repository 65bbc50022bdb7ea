/*
 * Reading what is stored of a file (file-data.ts): the chunks' slice lists,
 * from the slice cache or one query, merged newest on top, and the blocks
 * of each piece fetched through the block reader.
 */
import type { SqlDb } from '../sql.ts'
import { readSegments, type BlockReader } from './chunk-read.ts'
import type { DataLayout } from './layout.ts'
import { mergeSlices } from './read-merge.ts'
import { decodeSlices, type SliceRecord } from './slice.ts'
import type { SliceCache } from './slice-cache.ts'

export interface StoredRead {
  db: SqlDb
  slices: SliceCache
  layout: DataLayout
  read: BlockReader
  concurrency: number
}

export async function readStored(d: StoredRead, inode: bigint, off: number, n: number, mark: string): Promise<Buffer> {
  const out = Buffer.alloc(n)
  const cs = d.layout.chunkSize
  const first = Math.floor(off / cs)
  const last = Math.floor((off + n - 1) / cs)
  const lists = await chunkLists(d, inode, first, last, mark)
  const read = d.read
  const concurrency = d.concurrency
  const jobs: Promise<void>[] = []
  for (let idx = first; idx <= last; idx++) {
    const base = idx * cs
    const a = Math.max(off, base) - base
    const b = Math.min(off + n, base + cs) - base
    const records = lists.get(idx) ?? []
    if (records.length === 0) continue
    const segs = mergeSlices(records, a, b)
    jobs.push(readSegments(segs, out.subarray(base + a - off, base + b - off), a, d.layout.blockSize, read, concurrency))
  }
  const settled = await Promise.allSettled(jobs)
  for (const s of settled) if (s.status === 'rejected') throw s.reason
  return out
}

/** Slice lists of chunks first..last: from the cache, the rest in one query. */
export async function chunkLists(d: Pick<StoredRead, 'db' | 'slices'>, inode: bigint, first: number, last: number, mark: string): Promise<Map<number, SliceRecord[]>> {
  const lists = new Map<number, SliceRecord[]>()
  let lo = -1
  let hi = -1
  for (let idx = first; idx <= last; idx++) {
    const hit = d.slices.get(inode, idx)
    if (hit !== undefined) {
      lists.set(idx, hit)
    } else {
      if (lo < 0) lo = idx
      hi = idx
    }
  }
  if (lo < 0) return lists
  const r = await d.db.query('SELECT idx, slices FROM tsnfs_chunk WHERE inode = $1 AND idx >= $2 AND idx <= $3', [inode, lo, hi])
  const fetched = new Map<number, SliceRecord[]>()
  for (let idx = lo; idx <= hi; idx++) if (!lists.has(idx)) fetched.set(idx, [])
  for (const row of r.rows) {
    const idx = Number(row['idx'])
    if (lists.has(idx)) continue
    fetched.set(idx, decodeSlices(row['slices'] as Buffer, `inode ${inode} chunk ${idx}`))
  }
  d.slices.set(inode, mark, fetched, Date.now())
  for (const [idx, recs] of fetched) lists.set(idx, recs)
  return lists
}
