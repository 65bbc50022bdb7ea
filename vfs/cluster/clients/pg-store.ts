/*
 * ObjectStore in the metadata database (data=postgres): blocks are rows of
 * tsnfs_block (vfs/cluster/schema.ts), written once, read by range with
 * substring() so a 4 KiB read of a 4 MiB block moves 4 KiB. For small
 * installations that want one component to run; an S3 store scales further.
 *
 * Key order: the list must come back in byte order (as S3 lists), which a
 * database collation such as en_US does not give ("a_b" sorts after "ab"),
 * hence COLLATE "C" on the comparisons. PostgreSQL, YugabyteDB and
 * CockroachDB all know the "C" collation.
 */
import { ObjectMissing, ObjectStoreUnavailable, type ObjectInfo, type ObjectStore } from '../object-store.ts'
import type { SqlDb } from '../sql.ts'
import { DatabaseUnavailable } from './pg-db.ts'

/** Largest range one get may ask for: a whole chunk (vfs/cluster/schema.ts CHUNK_SIZE). */
export const MAX_GET = 64 * 1024 * 1024
/** Largest object put accepts: the same bound (a block is 4 MiB; small-file data is smaller). */
export const MAX_PUT = 64 * 1024 * 1024
/** Keys are ours (slice ids), never from a client; a cap keeps a bad caller from storing megabytes of key. */
export const MAX_KEY = 1024

export interface PgStoreOptions {
  /** Rows per list query (keyset pagination); tests use a small page to cross page edges. */
  pageSize?: number
  /** Keys per DELETE statement. */
  deleteBatch?: number
}

export class PgStore implements ObjectStore {
  private readonly db: SqlDb
  private readonly pageSize: number
  private readonly deleteBatch: number

  constructor(db: SqlDb, opts: PgStoreOptions = {}) {
    this.db = db
    this.pageSize = opts.pageSize ?? 1000
    this.deleteBatch = opts.deleteBatch ?? 1000
  }

  async init(): Promise<void> {
    await this.db.query(`CREATE TABLE IF NOT EXISTS tsnfs_block (key TEXT PRIMARY KEY, data BYTEA NOT NULL, created BIGINT NOT NULL)`)
  }

  async put(key: string, data: Buffer): Promise<void> {
    checkKey(key)
    if (data.length > MAX_PUT) throw new RangeError(`object ${key}: ${data.length} bytes is over the ${MAX_PUT}-byte limit`)
    // Objects are immutable, but a put retried after a lost acknowledgement must succeed again.
    await this.run(() => this.db.query(
      'INSERT INTO tsnfs_block (key, data, created) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET data = excluded.data, created = excluded.created',
      [key, data, Date.now()],
    ))
  }

  async get(key: string, offset: number, length: number): Promise<Buffer> {
    checkKey(key)
    checkRange(offset, length)
    // substring() counts from 1; FOR past the end gives what is there (a short read).
    const r = await this.run(() => this.db.query(
      'SELECT substring(data FROM $2::INTEGER FOR $3::INTEGER) AS d FROM tsnfs_block WHERE key = $1',
      [key, offset + 1, length],
    ))
    const row = r.rows[0]
    if (row === undefined) throw new ObjectMissing(key)
    const d = row['d']
    if (!Buffer.isBuffer(d)) throw new ObjectStoreUnavailable(`postgres table tsnfs_block: object ${key} came back as ${typeof d}, not bytes`)
    return d
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const k of keys) checkKey(k)
    for (let i = 0; i < keys.length; i += this.deleteBatch) {
      const batch = keys.slice(i, i + this.deleteBatch)
      await this.run(() => this.db.query('DELETE FROM tsnfs_block WHERE key = ANY($1::TEXT[])', [batch]))
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let after = ''
    for (;;) {
      // Keyset pagination: each page starts after the last key of the one before (no OFFSET scans).
      const r = await this.run(() => this.db.query(
        `SELECT key, octet_length(data) AS size, created FROM tsnfs_block
          WHERE key COLLATE "C" >= $1 AND key COLLATE "C" > $2
          ORDER BY key COLLATE "C" LIMIT $3`,
        [prefix, after, this.pageSize],
      ))
      for (const row of r.rows) {
        const key = String(row['key'])
        if (!key.startsWith(prefix)) return
        yield { key, size: Number(row['size']), mtimeMs: Number(row['created']) }
        after = key
      }
      if (r.rows.length < this.pageSize) return
    }
  }

  describe(): string {
    return 'postgres table tsnfs_block'
  }

  /** The database is the caller's (openClusterStores closes it); nothing of ours to release. */
  async close(): Promise<void> {}

  /** SQL errors stay as they are (they carry a SQLSTATE); a lost database is the store being unavailable. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof DatabaseUnavailable) {
        throw new ObjectStoreUnavailable(`postgres table tsnfs_block: ${err.message}`, { cause: err })
      }
      throw err
    }
  }
}

function checkKey(key: string): void {
  if (key.length === 0 || key.length > MAX_KEY) throw new RangeError(`object key of ${key.length} characters (1..${MAX_KEY})`)
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`object offset ${offset} is not a non-negative integer`)
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_GET) throw new RangeError(`object read of ${length} bytes (0..${MAX_GET})`)
  // substring() takes INTEGER positions: a block is never past 2 GiB.
  if (offset + 1 > 0x7fffffff) throw new RangeError(`object offset ${offset} is past 2 GiB`)
}
