/*
 * Rewriting a fragmented chunk as one slice (JuiceFS's compaction, our own
 * code). Many small writes leave many records, and every read merges them
 * all; compaction reads the merged bytes, uploads them as one new slice,
 * and swaps the chunk's records for it in one transaction — only if the
 * record list is byte-for-byte what was read (else another write came in:
 * give up this round and delete what was uploaded). Old slices lose their
 * references; their blocks go after the commit.
 */
import type { IdBatch } from '../ids.ts'
import { notifyChanged } from '../change.ts'
import type { ObjectStore } from '../object-store.ts'
import { payloadSql } from '../meta/notify-sql.ts'
import { CHANGE_CHANNEL, COUNTER } from '../schema.ts'
import type { SqlDb, SqlTx } from '../sql.ts'
import { readSegments, type BlockReader } from './chunk-read.ts'
import type { DataLayout } from './layout.ts'
import { dataExtent, mergeSlices } from './read-merge.ts'
import { decrementRefs, reapZeroRefs } from './refs.ts'
import { countRefs, decodeSlices, encodeSlices } from './slice.ts'
import { abandonSlices, recordPending, uploadSlice } from './upload.ts'

/** A chunk with more records than this is compacted in the background. */
export const COMPACT_AT = 16

export interface CompactOptions {
  db: SqlDb
  store: ObjectStore
  sid: bigint
  /** Default true; false: the change is not announced (no change feed: meta/cache-mode.ts). */
  announce?: boolean
  layout: DataLayout
  sliceIds: IdBatch
  /** Block reads (FileData passes its cache); default: the store directly. */
  read?: BlockReader
  concurrency?: number
}

export interface CompactResult {
  /** 'compacted': records replaced; 'nothing': 0 or 1 record; 'changed': the chunk changed meanwhile, nothing done. */
  outcome: 'compacted' | 'nothing' | 'changed'
  recordsBefore: number
  recordsAfter: number
}

/** compactChunk's result: with 'compacted', the node's version its change was announced with (absent: the node is gone). */
export interface CompactDone extends CompactResult {
  ver?: bigint
}

export async function compactChunk(o: CompactOptions, inode: bigint, idx: number): Promise<CompactDone> {
  const { db, store, layout } = o
  const concurrency = o.concurrency ?? 4
  const read: BlockReader = o.read ?? ((key, _len, from, length) => store.get(key, from, length))
  const r = await db.query('SELECT slices FROM tsnfs_chunk WHERE inode = $1 AND idx = $2', [inode, idx])
  const raw = r.rows[0]?.['slices'] as Buffer | undefined
  if (raw === undefined) return { outcome: 'nothing', recordsBefore: 0, recordsAfter: 0 }
  const records = decodeSlices(raw, `inode ${inode} chunk ${idx}`)
  if (records.length <= 1) return { outcome: 'nothing', recordsBefore: records.length, recordsAfter: records.length }

  const extent = dataExtent(mergeSlices(records, 0, layout.chunkSize))
  let fresh: { id: bigint; size: number; pos: number } | undefined
  if (extent !== null) {
    const data = Buffer.alloc(extent.end - extent.start)
    await readSegments(mergeSlices(records, extent.start, extent.end), data, extent.start, layout.blockSize, read, concurrency)
    const id = await takeId(o.sliceIds)
    fresh = { id, size: data.length, pos: extent.start }
    await recordPending(db, o.sid, [fresh])
    try {
      await uploadSlice(store, id, data, layout.blockSize, concurrency)
    } catch (err) {
      await abandonSlices(db, store, [fresh], layout.blockSize).catch(() => undefined)
      throw err
    }
  }

  const done = await db.transaction(async (tx) => {
    const now = await tx.query('SELECT slices FROM tsnfs_chunk WHERE inode = $1 AND idx = $2', [inode, idx])
    const current = now.rows[0]?.['slices'] as Buffer | undefined
    if (current === undefined || !current.equals(raw)) return false as const
    if (fresh === undefined) {
      await tx.query('DELETE FROM tsnfs_chunk WHERE inode = $1 AND idx = $2', [inode, idx])
    } else {
      const rec = encodeSlices([{ pos: fresh.pos, id: fresh.id, size: fresh.size, off: 0, len: fresh.size }])
      await tx.query('UPDATE tsnfs_chunk SET slices = $3 WHERE inode = $1 AND idx = $2', [inode, idx, rec])
      await tx.query('INSERT INTO tsnfs_slice_ref (id, size, refs) VALUES ($1, $2, 1)', [fresh.id, fresh.size])
      await tx.query('DELETE FROM tsnfs_pending_slice WHERE id = $1', [fresh.id])
      await tx.query('UPDATE tsnfs_counter SET value = value + $2 WHERE name = $1', [COUNTER.usedBytes, fresh.size])
    }
    // The chunk's records now show one slice: the node's used bytes lose the old records' and gain it.
    const before = records.reduce((n, x) => n + (x.id === 0n ? 0 : x.len), 0)
    const delta = (fresh?.size ?? 0) - before
    const ver = await touchNode(tx, o.announce === false ? null : o.sid, inode, delta)
    await decrementRefs(tx, countRefs(records))
    return { ver }
  }, { label: 'compact' })

  if (done === false) {
    if (fresh !== undefined) await abandonSlices(db, store, [fresh], layout.blockSize)
    return { outcome: 'changed', recordsBefore: records.length, recordsAfter: records.length }
  }
  await reapZeroRefs(db, store, layout.blockSize)
  return { outcome: 'compacted', recordsBefore: records.length, recordsAfter: fresh === undefined ? 0 : 1, ...(done.ver === undefined ? {} : { ver: done.ver }) }
}

/**
 * The node's side of a compaction, and its notification, in one statement; returns the version
 * named (undefined: the node is gone, announced unversioned; or nothing was sent). `used` is an attribute (fattr3
 * used, RFC 1813 §2.5): when it changes the version goes up as for any metadata change. When it
 * does not (the new slice stores exactly what the records showed), no attribute changed: the
 * version stays and is named as it is, so other servers keep their copies of the node at that
 * version; they drop their slice lists whatever the version (cache-follower.ts).
 */
async function touchNode(tx: SqlTx, sid: bigint | null, inode: bigint, delta: number): Promise<bigint | undefined> {
  // Nothing to change and no one to tell (cache mode 'per-request' keeps no copies): no statement.
  if (delta === 0 && sid === null) return undefined
  const params: unknown[] = [inode]
  let node = 'SELECT inode, ver FROM tsnfs_node WHERE inode = $1'
  if (delta !== 0) {
    params.push(delta)
    node = 'UPDATE tsnfs_node SET used = GREATEST(0, used + $2::bigint), ver = ver + 1 WHERE inode = $1 RETURNING inode, ver'
  }
  if (sid !== null) params.push(CHANGE_CHANNEL, sid)
  const notify = sid === null ? '' : `, pg_notify($${params.length - 1}, ${payloadSql(`$${params.length}`, ['n'])}) AS notified`
  const r = await tx.query(`WITH n AS (${node}) SELECT n.ver${notify} FROM n`, params)
  const ver = r.rows[0]?.['ver']
  if (ver !== undefined) return BigInt(ver as string)
  await notifyChanged(tx, sid, [inode])
  return undefined
}

/** Slice ids are never 0 (that id reads as zeros), even on a counter initialised at 0. */
export async function takeId(ids: IdBatch): Promise<bigint> {
  for (;;) {
    const id = await ids.take()
    if (id > 0n) return id
  }
}
