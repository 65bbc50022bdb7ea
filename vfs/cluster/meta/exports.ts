/*
 * Export ids live in the database: a handle carries its export's id, so
 * every server must give one exported path the same id, or handles minted
 * by one server would name another export (or nothing) on the next.
 */
import { ClusterFormatError } from '../init.ts'
import type { SqlDb } from '../sql.ts'

/** Register `path` as export `id`, or confirm it is; refuse if another id holds it. */
export async function registerExport(db: SqlDb, path: string, id: bigint): Promise<void> {
  await db.query('INSERT INTO tsnfs_export (path, export_id) VALUES ($1, $2) ON CONFLICT (path) DO NOTHING', [path, id])
  const r = await db.query('SELECT export_id FROM tsnfs_export WHERE path = $1', [path])
  const have = r.rows[0]?.['export_id']
  if (have === undefined || BigInt(have as string) !== id) {
    throw new ClusterFormatError(
      `export ${path} is registered in the cluster database with id ${String(have)}, not ${id}: ` +
        'every server must give an export the same id (handles carry it)',
    )
  }
}
