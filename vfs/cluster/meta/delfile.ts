/*
 * Files (and symlinks, device nodes) whose last link is gone wait in
 * tsnfs_delfile, their node rows at nlink 0, until their chunks are released (FileData.release drops slice references; blocks at zero
 * references are deleted after that commit). The server that removed the
 * file releases it right after its commit; a crash in between leaves the
 * row, which any server's stale-session sweep processes.
 */
import type { FileData } from '../data/types.ts'
import { COUNTER } from '../schema.ts'
import type { SqlDb, SqlTx } from '../sql.ts'

/**
 * Released node rows leave COUNTER.usedInodes in the releasing transaction: releases come in
 * batches after the replies (release-queue.ts), so the row is written once per batch, not per
 * REMOVE, and a crash cannot lose the count.
 */
export async function dropInodes(tx: SqlTx, n: number): Promise<void> {
  if (n > 0) await tx.query('UPDATE tsnfs_counter SET value = value - $2 WHERE name = $1', [COUNTER.usedInodes, n])
}

/** Release one deleted file's chunks and forget it; false if another server already did. */
export async function releaseDeleted(db: SqlDb, data: FileData, inode: bigint): Promise<boolean> {
  return db.transaction(async (tx) => {
    const r = await tx.query('DELETE FROM tsnfs_delfile WHERE inode = $1', [inode])
    if (r.rowCount === 0) return false
    await data.release(tx, inode)
    const gone = await tx.query('DELETE FROM tsnfs_node WHERE inode = $1 AND nlink <= 0', [inode])
    await dropInodes(tx, gone.rowCount)
    return true
  }, { label: 'release' })
}

/**
 * Release several deleted files in one transaction (ReleaseQueue): the delfile rows this server
 * still finds decide which (another server's sweep may have taken some).
 */
export async function releaseDeletedMany(db: SqlDb, data: FileData, inodes: readonly bigint[]): Promise<number> {
  if (inodes.length === 0) return 0
  const ids = inodes.map(String)
  return db.transaction(async (tx) => {
    const r = await tx.query('DELETE FROM tsnfs_delfile WHERE inode = ANY($1::bigint[]) RETURNING inode', [ids])
    const mine = r.rows.map((row) => BigInt(row['inode'] as string))
    for (const inode of mine) await data.release(tx, inode)
    if (mine.length > 0) {
      const gone = await tx.query('DELETE FROM tsnfs_node WHERE inode = ANY($1::bigint[]) AND nlink <= 0', [mine.map(String)])
      await dropInodes(tx, gone.rowCount)
    }
    return mine.length
  }, { label: 'release' })
}

/** Up to `limit` entries of the delfile queue, oldest first; returns how many were released. */
export async function releaseQueued(db: SqlDb, data: FileData, limit = 1000): Promise<number> {
  const r = await db.query('SELECT inode FROM tsnfs_delfile ORDER BY since LIMIT $1', [limit])
  let n = 0
  for (const row of r.rows) {
    if (await releaseDeleted(db, data, BigInt(row['inode'] as string))) n++
  }
  return n
}
