/*
 * A fresh file system for data-layer tests: a new PostgreSQL database with
 * the schema and counters, a DirStore in the test's directory, and file
 * nodes to write to.
 */
import { PgDb } from '../../../../vfs/cluster/clients/pg-db.ts'
import { COUNTER, SCHEMA_SQL, TYPE_CODE } from '../../../../vfs/cluster/schema.ts'
import type { SqlDb } from '../../../../vfs/cluster/sql.ts'
import { testDatabase } from '../../../helpers/postgres.ts'
import { DirStore } from './dir-store.ts'

export interface Fixture {
  /** The database's URL (another PgDb on it is another server's connection pool). */
  url: string
  db: PgDb
  store: DirStore
  /** A new regular file node (size 0); returns its inode. */
  newFile(): Promise<bigint>
}

interface TapLike {
  teardown(fn: () => unknown): void
  testdir(): string
}

let nextInode = 100n

export async function fixture(t: TapLike): Promise<Fixture> {
  const url = await testDatabase(t)
  const db = new PgDb({ url, max: 4 })
  t.teardown(() => db.close())
  for (const sql of SCHEMA_SQL) await db.query(sql)
  await db.query('INSERT INTO tsnfs_counter (name, value) VALUES ($1, 1), ($2, 0), ($3, 2), ($4, 0)', [
    COUNTER.nextSlice, COUNTER.usedBytes, COUNTER.nextInode, COUNTER.usedInodes,
  ])
  const store = new DirStore(t.testdir())
  await store.init()
  return { url, db, store, newFile: () => newFile(db) }
}

export async function newFile(db: SqlDb): Promise<bigint> {
  const inode = nextInode++
  await db.query(
    `INSERT INTO tsnfs_node (inode, gen, type, mode, uid, gid, nlink, size, atime_sec, atime_nsec, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec)
     VALUES ($1, 1, $2, 420, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)`,
    [inode, TYPE_CODE.file],
  )
  // Counted as a server counts its creates (meta/counter-delta.ts), so fsck finds the count right.
  await db.query('UPDATE tsnfs_counter SET value = value + 1 WHERE name = $1', [COUNTER.usedInodes])
  return inode
}

export async function nodeSize(db: SqlDb, inode: bigint): Promise<bigint> {
  const r = await db.query('SELECT size FROM tsnfs_node WHERE inode = $1', [inode])
  return BigInt(r.rows[0]?.['size'] as string)
}

export async function counter(db: SqlDb, name: string): Promise<number> {
  const r = await db.query('SELECT value FROM tsnfs_counter WHERE name = $1', [name])
  return Number(r.rows[0]?.['value'])
}
