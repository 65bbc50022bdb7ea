/*
 * Cleaning up after servers and files that are gone (issue 17 §3: a dead
 * server's in-flight state is cleaned up by the others).
 *  - reclaimSession: slices a dead server announced but never attached
 *    (tsnfs_pending_slice with its sid): their blocks, then the rows. The
 *    caller decides the session is dead (stale heartbeat).
 *  - processDelfiles: inodes whose last link is gone (tsnfs_delfile) have
 *    their chunks released and their node rows (at nlink 0) deleted, each
 *    in its own transaction so servers racing on the same row do the work
 *    once (the DELETE's row count decides).
 */
import type { ObjectStore } from '../object-store.ts'
import { COUNTER } from '../schema.ts'
import type { SqlDb } from '../sql.ts'
import { DEFAULT_LAYOUT } from './layout.ts'
import { reapZeroRefs, releaseChunks } from './refs.ts'
import { deleteSliceBlocks } from './upload.ts'

export interface ReclaimReport {
  slices: number
  blocks: number
}

export async function reclaimSession(db: SqlDb, store: ObjectStore, sid: bigint, opts: { blockSize?: number } = {}): Promise<ReclaimReport> {
  const blockSize = opts.blockSize ?? DEFAULT_LAYOUT.blockSize
  const r = await db.query('SELECT id, size FROM tsnfs_pending_slice WHERE sid = $1', [sid])
  const slices = r.rows.map((row) => ({ id: BigInt(row['id'] as string), size: Number(row['size']) }))
  if (slices.length === 0) return { slices: 0, blocks: 0 }
  const blocks = await deleteSliceBlocks(store, slices, blockSize)
  for (let i = 0; i < slices.length; i += 1000) {
    const part = slices.slice(i, i + 1000)
    await db.query(`DELETE FROM tsnfs_pending_slice WHERE sid = $1 AND id IN (${part.map((_, j) => `$${j + 2}`).join(', ')})`, [sid, ...part.map((s) => s.id)])
  }
  return { slices: slices.length, blocks }
}

export interface DelfileReport {
  /** Inodes whose chunks were released. */
  inodes: number
  /** Slices whose blocks were then deleted. */
  slices: number
}

export async function processDelfiles(db: SqlDb, store: ObjectStore, opts: { limit?: number; blockSize?: number } = {}): Promise<DelfileReport> {
  const blockSize = opts.blockSize ?? DEFAULT_LAYOUT.blockSize
  const r = await db.query('SELECT inode FROM tsnfs_delfile ORDER BY since LIMIT $1', [opts.limit ?? 100])
  let inodes = 0
  for (const row of r.rows) {
    const inode = BigInt(row['inode'] as string)
    const done = await db.transaction(async (tx) => {
      const gone = await tx.query('DELETE FROM tsnfs_delfile WHERE inode = $1', [inode])
      if (gone.rowCount === 0) return false
      await releaseChunks(tx, inode)
      // As ClusterVfs's own release does (vfs/cluster/meta/delfile.ts): the node row goes with its data.
      const node = await tx.query('DELETE FROM tsnfs_node WHERE inode = $1 AND nlink <= 0', [inode])
      if (node.rowCount > 0) await tx.query('UPDATE tsnfs_counter SET value = value - $2 WHERE name = $1', [COUNTER.usedInodes, node.rowCount])
      return true
    }, { label: 'delfile' })
    if (done) inodes++
  }
  let slices = 0
  if (inodes > 0) {
    for (;;) {
      const reaped = await reapZeroRefs(db, store, blockSize)
      slices += reaped.slices
      if (reaped.slices < 1000) break
    }
  }
  return { inodes, slices }
}
