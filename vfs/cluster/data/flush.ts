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
import { abandonSlices, deleteSliceBlocks, parallel, recordPending, settleAttach, type SliceSize } from './upload.ts'

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

/**
 * A flush whose attach's outcome is unknown and could not be settled (the database did not
 * answer): its slices, their bytes, and the error to report (`cause`). Nothing is promised.
 */
export class Unsettled extends Error {
  readonly slices: readonly SliceSize[]
  readonly bytes: number
  constructor(slices: readonly SliceSize[], bytes: number, cause: unknown) {
    super(`attach of slices ${slices.map((s) => s.id).join(', ')}: outcome unknown`, { cause })
    this.name = 'Unsettled'
    this.slices = slices
    this.bytes = bytes
  }
}

/**
 * Settle an Unsettled flush (settleAttach): true when its attach committed (its bytes are now
 * counted); false when it attached nothing (its blocks are being deleted). Throws while the
 * database cannot say.
 */
export async function settleLater(d: Pick<FlushDeps, 'db' | 'store' | 'layout' | 'stored' | 'track'>, u: Unsettled): Promise<boolean> {
  const left = await settleAttach(d.db, u.slices)
  if (left === 'attached') {
    d.stored(u.bytes)
    return true
  }
  d.track(deleteSliceBlocks(d.store, left, d.layout.blockSize))
  return false
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
    // Unsettled: the database did not answer that either. The bytes are neither stored nor
    // not; the caller keeps them aside until a later settleAttach can say (file-data.ts).
    if (!told) throw new Unsettled(sizes, bytes, err)
    d.track(abandonSlices(db, store, sizes, bs))
    throw err
  }
}
