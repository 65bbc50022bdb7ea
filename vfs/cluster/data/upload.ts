/*
 * Putting a slice's blocks into the object store. A slice is announced in
 * tsnfs_pending_slice (with this server's session) BEFORE its first block is
 * put, so a block in the store always has a row naming it — pending until
 * the attach transaction turns it into a tsnfs_slice_ref row. That is what
 * lets gc delete any block whose slice has neither (reclaim.ts cleans up the
 * pending rows of a server that died). Abandoning a slice deletes its row
 * before its blocks (abandonSlices): blocks nothing names are gc's anyway.
 */
import type { ObjectStore } from '../object-store.ts'
import type { SqlDb } from '../sql.ts'
import { blockLength, sliceKeys } from './keys.ts'

/** Run `fn` over `items` with at most `limit` running at once; the first failure is thrown after all settle. */
export async function parallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  let failure: { err: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      const item = items[next++] as T
      try {
        await fn(item)
      } catch (err) {
        failure ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failure !== undefined) throw failure.err
}

export interface SliceSize {
  id: bigint
  size: number
}

/** Announce slices about to be uploaded by session `sid` (one round trip). */
export async function recordPending(db: SqlDb, sid: bigint, slices: readonly SliceSize[], now = Date.now()): Promise<void> {
  if (slices.length === 0) return
  const params: unknown[] = [sid, now]
  const rows = slices.map((s) => {
    params.push(s.id, s.size)
    return `($${params.length - 1}, $1, $${params.length}, $2)`
  })
  await db.query(`INSERT INTO tsnfs_pending_slice (id, sid, size, created) VALUES ${rows.join(', ')}`, params)
}

/** Put the blocks of one slice; `data` is the whole slice. */
export async function uploadSlice(store: ObjectStore, id: bigint, data: Buffer, blockSize: number, concurrency: number): Promise<void> {
  const keys = sliceKeys(id, data.length, blockSize)
  await parallel(keys.map((k, i) => ({ k, i })), concurrency, async ({ k, i }) => {
    const from = i * blockSize
    await store.put(k, data.subarray(from, from + blockLength(data.length, i, blockSize)))
  })
}

/** Delete every block of the slices (keys already gone are fine). */
export async function deleteSliceBlocks(store: ObjectStore, slices: readonly SliceSize[], blockSize: number): Promise<number> {
  const keys = slices.flatMap((s) => sliceKeys(s.id, s.size, blockSize))
  for (let i = 0; i < keys.length; i += 1000) await store.delete(keys.slice(i, i + 1000))
  return keys.length
}

/** Delete the slices' pending rows; the ids whose row was still there (one round trip). */
export async function claimPending(db: SqlDb, slices: readonly SliceSize[]): Promise<Set<bigint>> {
  if (slices.length === 0) return new Set()
  const r = await db.query(
    `DELETE FROM tsnfs_pending_slice WHERE id IN (${slices.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`,
    slices.map((s) => s.id),
  )
  return new Set(r.rows.map((row) => BigInt(row['id'] as string)))
}

/**
 * Uploaded but not attached (the attach failed): the slices' pending rows go, then the blocks of
 * those whose row was still there. A slice without one was attached after all: an attach whose
 * reply was lost after its commit (a connection dropped) turned the row into a reference, and
 * its blocks are the file's; deleting them lost committed data (EIO on read). The attach requires
 * every row of its slices (attach.ts), so once this DELETE has a row that slice is never
 * attached, even by an attach still running on the server. Rows first: a crash between leaves
 * blocks no row names, which gc deletes (gc.ts). Best effort; gc and reclaim catch the rest.
 * Returns the ids whose row it deleted.
 */
export async function abandonSlices(db: SqlDb, store: ObjectStore, slices: readonly SliceSize[], blockSize: number): Promise<Set<bigint>> {
  const pending = await claimPending(db, slices)
  await deleteSliceBlocks(store, slices.filter((s) => pending.has(s.id)), blockSize)
  return pending
}

/**
 * An attach whose outcome is unknown (its reply was lost: it may have committed, or may still
 * commit on the server) is settled by claiming its pending rows. The attach deletes every one
 * or none (attach.ts), and a row we delete can no longer be attached; the DELETE waits for an
 * attach holding the rows to end. Rows claimed: it attached nothing and never will; the slices
 * to delete the blocks of are returned. None left: the attach committed, or an earlier settling
 * claimed them and its reply was lost too (reclaim takes only a dead session's: reclaim.ts).
 * The references tell them apart (a new statement, so it sees an attach our DELETE waited
 * for); any one means the attach committed (it makes all or none; the rest were released
 * since): the bytes are stored and must not be flushed again (they would be attached twice).
 */
export async function settleAttach(db: SqlDb, slices: readonly SliceSize[]): Promise<'attached' | SliceSize[]> {
  const pending = await claimPending(db, slices)
  if (pending.size > 0 || slices.length === 0) return slices.filter((s) => pending.has(s.id))
  const refs = await referenced(db, slices)
  return refs.size > 0 ? 'attached' : [...slices]
}

/** The ids of the slices that have a reference row (were attached and are still named; one round trip). */
export async function referenced(db: SqlDb, slices: readonly SliceSize[]): Promise<Set<bigint>> {
  if (slices.length === 0) return new Set()
  const r = await db.query(
    `SELECT id FROM tsnfs_slice_ref WHERE id IN (${slices.map((_, i) => `$${i + 1}`).join(', ')})`,
    slices.map((s) => s.id),
  )
  return new Set(r.rows.map((row) => BigInt(row['id'] as string)))
}
