/*
 * One flush of an inode's staged bytes (file-data.ts holds the inode's turn):
 * a slice per contiguous run and chunk, announced as pending, its blocks
 * put, then the attach (attach.ts). When the attach fails, what happened to
 * the slices decides what the flush reports: the bytes are stored only if
 * the attach committed, and a committed attach must not be flushed again.
 */
import { VfsError } from '../../errors.ts'
import type { IdBatch } from '../ids.ts'
import type { ObjectStore } from '../object-store.ts'
import type { SqlDb } from '../sql.ts'
import { AttachLost, attachSlices, type NewSlice } from './attach.ts'
import { takeId } from './compaction.ts'
import { blockKey } from './keys.ts'
import type { DataLayout } from './layout.ts'
import type { StagedFile } from './staging.ts'
import { abandonSlices, deleteSliceBlocks, parallel, recordPending, referenced, settleAttach, type SliceSize } from './upload.ts'

export interface FlushDeps {
  db: SqlDb
  store: ObjectStore
  /** This server's session (the pending rows carry it). */
  sid: bigint
  /** False: the attach announces nothing (no change feed). */
  notify?: boolean
  concurrency?: number
  layout: DataLayout
  sliceIds: IdBatch
  /** Bytes now stored, for the usage counter; may come later, from the background. */
  stored: (bytes: number) => void
  /** Background work (close waits for it). */
  track: (p: Promise<unknown>) => void
}

export interface Flushed {
  /** Records per chunk touched (empty when the attach's reply was lost: not known). */
  counts: Map<number, number>
  /** The node's version the attach reached, when its reply came. */
  ver?: bigint
}

export async function uploadAndAttach(d: FlushDeps, inode: bigint, f: StagedFile): Promise<Flushed> {
  const { db, store, sid } = d
  const bs = d.layout.blockSize
  const runs = f.runs(d.layout.chunkSize)
  const slices: (NewSlice & { data: Buffer })[] = []
  for (const r of runs) {
    const id = await takeId(d.sliceIds)
    slices.push({ idx: r.idx, data: r.data, record: { pos: r.pos, id, size: r.data.length, off: 0, len: r.data.length } })
  }
  const sizes: SliceSize[] = slices.map((s) => ({ id: s.record.id, size: s.record.size }))
  const bytes = sizes.reduce((n, s) => n + s.size, 0)
  await recordPending(db, sid, sizes)
  let sent = false
  try {
    const puts = slices.flatMap((s) => {
      const out: { key: string; data: Buffer }[] = []
      for (let i = 0; i * bs < s.data.length; i++) {
        const part = s.data.subarray(i * bs, (i + 1) * bs)
        out.push({ key: blockKey(s.record.id, i, part.length), data: part })
      }
      return out
    })
    await parallel(puts, d.concurrency ?? 8, (p) => store.put(p.key, p.data))
    sent = true
    const attached = await attachSlices(db, { sid: d.notify === false ? null : sid, inode, slices, end: BigInt(f.end), mtime: f.mtime })
    d.stored(bytes)
    return attached
  } catch (err) {
    // Not sent, or the attach answered that it attached nothing: abandon. Otherwise its outcome
    // is unknown (a lost reply): settle it first, or a committed attach is flushed again (upload.ts).
    const told = !sent || err instanceof AttachLost || (err instanceof VfsError && err.code === 'ESTALE')
    const left = told ? undefined : await settleAttach(db, sizes).catch(() => undefined)
    if (left === 'attached') {
      d.stored(bytes)
      return { counts: new Map() }
    }
    if (left !== undefined) {
      d.track(deleteSliceBlocks(store, left, bs))
      throw err
    }
    // Unsettled (the database did not answer that either): the bytes stay staged, and an attach
    // that did commit is found by the abandon (no row left, references there), so its bytes are
    // counted; the retry stores them again (twice until compaction, but counted as stored). No
    // row and no reference: the settling DELETE committed with its reply lost too, and nothing
    // names those blocks any more.
    d.track(abandonSlices(db, store, sizes, bs).then(async (pending) => {
      if (told || sizes.length === 0 || pending.size > 0) return
      const refs = await referenced(db, sizes)
      if (refs.size === sizes.length) d.stored(bytes)
      else await deleteSliceBlocks(store, sizes.filter((s) => !refs.has(s.id)), bs)
    }))
    throw err
  }
}
