/*
 * Creating a cluster file system in an empty database (`tsnfs cluster
 * init`), and the checks a server makes before using one. init is
 * idempotent: tables are CREATE IF NOT EXISTS, and settings, counters and
 * the root are inserted only where missing (ON CONFLICT DO NOTHING on a
 * primary key, which PostgreSQL, CockroachDB and YugabyteDB all accept), so
 * running it twice, or on two machines at once, changes nothing the second
 * time, and never replaces the handle key every server mints handles with.
 */
import { randomBytes } from 'node:crypto'
import { COUNTER, ROOT_INODE, SCHEMA_FORMAT, SCHEMA_SQL, SETTING, TYPE_CODE } from './schema.ts'
import type { SqlDb } from './sql.ts'
import { MAX_SMALL_BLOCK } from './tiered-store.ts'

export interface InitOptions {
  /** The 32-byte handle MAC key; random unless given (a migration keeps an old key). */
  handleKey?: Buffer
  /** 'postgres' or the s3:// URL (no credentials) the data lives at. */
  data: string
  /**
   * Keep blocks of at most this many bytes in the database (data=s3 only).
   * Absent: what the database already says, else 0 (none). Fixed once set:
   * every server routes a block by it, and blocks already stored stay where they are.
   */
  smallBlocks?: number
}

/** The database is not a cluster file system tsnfs can use; the message says what to do. */
export class ClusterFormatError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ClusterFormatError'
  }
}

export async function initCluster(db: SqlDb, opts: InitOptions): Promise<void> {
  if (opts.handleKey !== undefined && opts.handleKey.length !== 32) throw new RangeError('handle key must be 32 bytes')
  const small = opts.smallBlocks
  if (small !== undefined && (!Number.isInteger(small) || small < 0 || small > MAX_SMALL_BLOCK)) {
    throw new RangeError(`small-block threshold ${small} is not 0..${MAX_SMALL_BLOCK} bytes`)
  }
  if (small !== undefined && small > 0 && opts.data === 'postgres') {
    throw new ClusterFormatError('small blocks in the database are for data in S3: with data=postgres every block is there already')
  }
  for (const stmt of SCHEMA_SQL) await db.query(stmt)
  const key = (opts.handleKey ?? randomBytes(32)).toString('hex')
  const t = Date.now()
  await db.transaction(async (tx) => {
    const existing = await tx.query('SELECT value FROM tsnfs_setting WHERE name = $1', [SETTING.format])
    const format = existing.rows[0]?.['value'] as string | undefined
    if (format !== undefined && format !== String(SCHEMA_FORMAT)) {
      throw new ClusterFormatError(`database holds cluster format ${format}; this tsnfs writes format ${SCHEMA_FORMAT}`)
    }
    const data = await tx.query('SELECT value FROM tsnfs_setting WHERE name = $1', [SETTING.data])
    const had = data.rows[0]?.['value'] as string | undefined
    if (had !== undefined && had !== opts.data) {
      throw new ClusterFormatError(`database already keeps its data at ${had}, not ${opts.data}`)
    }
    const hadSmall = (await tx.query('SELECT value FROM tsnfs_setting WHERE name = $1', [SETTING.smallBlocks])).rows[0]?.['value'] as string | undefined
    if (hadSmall !== undefined && small !== undefined && hadSmall !== String(small)) {
      throw new ClusterFormatError(`database already keeps blocks of at most ${hadSmall} bytes in the database, not ${small}: the threshold is fixed at init`)
    }
    const settings: [string, string][] = [
      [SETTING.format, String(SCHEMA_FORMAT)],
      [SETTING.handleKey, key],
      [SETTING.data, opts.data],
      [SETTING.smallBlocks, String(small ?? 0)],
      [SETTING.created, String(t)],
    ]
    for (const [name, value] of settings) {
      await tx.query('INSERT INTO tsnfs_setting (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, value])
    }
    const counters: [string, bigint][] = [
      [COUNTER.nextInode, ROOT_INODE + 1n],
      [COUNTER.nextSlice, 1n],
      [COUNTER.usedBytes, 0n],
      [COUNTER.usedInodes, 1n],
    ]
    for (const [name, value] of counters) {
      await tx.query('INSERT INTO tsnfs_counter (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, value])
    }
    const sec = Math.floor(t / 1000)
    const nsec = (t % 1000) * 1_000_000
    // The root: 0755 root:root, its own parent (".." of the root is the root).
    await tx.query(
      'INSERT INTO tsnfs_node (inode, gen, type, mode, uid, gid, nlink, size, atime_sec, atime_nsec, mtime_sec, mtime_nsec, ' +
        'ctime_sec, ctime_nsec, parent) VALUES ($1, 1, $2, $3, 0, 0, 2, 0, $4, $5, $4, $5, $4, $5, $1) ON CONFLICT (inode) DO NOTHING',
      [ROOT_INODE, TYPE_CODE.dir, 0o755, sec, nsec],
    )
  }, { label: 'init' })
}

async function setting(db: SqlDb, name: string): Promise<string | undefined> {
  let r
  try {
    r = await db.query('SELECT value FROM tsnfs_setting WHERE name = $1', [name])
  } catch (err) {
    // 42P01: undefined_table: nothing was ever initialized here.
    if ((err as { code?: unknown }).code === '42P01') return undefined
    throw err
  }
  const v = r.rows[0]?.['value']
  return typeof v === 'string' ? v : undefined
}

/** Refuse a database that is not (or not yet, or no longer) a cluster file system of our format. */
export async function checkFormat(db: SqlDb): Promise<void> {
  const format = await setting(db, SETTING.format)
  if (format === undefined) {
    throw new ClusterFormatError('the database holds no tsnfs cluster file system: create one with `tsnfs cluster init --meta URL --data URL|postgres`')
  }
  if (format !== String(SCHEMA_FORMAT)) {
    throw new ClusterFormatError(`the database holds cluster format ${format}; this tsnfs reads format ${SCHEMA_FORMAT} only`)
  }
}

/** The handle key every server of this file system mints and checks handles with. */
export async function readHandleKey(db: SqlDb): Promise<Buffer> {
  await checkFormat(db)
  const hex = await setting(db, SETTING.handleKey)
  const key = hex === undefined ? undefined : Buffer.from(hex, 'hex')
  if (key?.length !== 32) throw new ClusterFormatError('the cluster database has no valid handle key: run `tsnfs cluster init` again')
  return key
}

/** Where the data lives ('postgres' or an s3:// URL), as init recorded it. */
export async function readDataLocation(db: SqlDb): Promise<string> {
  await checkFormat(db)
  return (await setting(db, SETTING.data)) ?? 'postgres'
}

/**
 * The small-block threshold init recorded (0: none, or a database made
 * before the setting existed). Read before any block is touched, so every
 * server routes blocks alike; a value out of range is refused, not guessed.
 */
export async function readSmallBlocks(db: SqlDb): Promise<number> {
  const v = await setting(db, SETTING.smallBlocks)
  if (v === undefined) return 0
  const n = /^\d{1,8}$/.test(v) ? Number(v) : NaN
  if (!(n >= 0 && n <= MAX_SMALL_BLOCK)) throw new ClusterFormatError(`the cluster database's small-block threshold "${v}" is not 0..${MAX_SMALL_BLOCK}`)
  return n
}
