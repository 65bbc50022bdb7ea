/*
 * The catalog's schema (issue 16 §6) and the check every open makes: the file must be a SQLite
 * database carrying our application id, at a schema version this code knows; an older version is
 * migrated in one transaction, a newer one is refused (an older tsnfs must not write a catalog a
 * newer one laid out). Times are integers of nanoseconds since the epoch (int64 holds them until
 * 2262); sizes, offsets and file ids are int64 too.
 */
import Database from 'better-sqlite3'
import type { Database as Db } from 'better-sqlite3'

/** 'tsnc' in PRAGMA application_id: a SQLite file of another program is not taken for a catalog. */
export const APPLICATION_ID = 0x74736e63
export const SCHEMA_VERSION = 1

/** A catalog file that cannot be used: not SQLite, not ours, corrupt, or from a newer tsnfs. */
export class CatalogError extends Error {
  readonly code: 'CATALOG_CORRUPT' | 'CATALOG_FOREIGN' | 'CATALOG_VERSION' | 'CATALOG_NOT_FOUND' | 'CATALOG_BAD_INPUT' | 'CATALOG_STATE'
  constructor(code: CatalogError['code'], message: string) {
    super(message)
    this.name = 'CatalogError'
    this.code = code
  }
}

/** Version 1. Each later version appends one entry to MIGRATIONS (the step from the version before). */
const V1 = `
CREATE TABLE backups (
  id INTEGER PRIMARY KEY,
  filesystem TEXT NOT NULL,
  level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 9),
  -- the lower-level backup this one is relative to (dump's rule); NULL: the backup is full
  base_id INTEGER,
  full INTEGER NOT NULL,
  started_ns INTEGER NOT NULL,
  ended_ns INTEGER,
  status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'aborted')),
  host TEXT NOT NULL DEFAULT '',
  agent TEXT NOT NULL DEFAULT '',
  job_id TEXT,
  bytes INTEGER NOT NULL DEFAULT 0,
  files INTEGER NOT NULL DEFAULT 0,
  message TEXT
);
CREATE INDEX backups_fs ON backups (filesystem, started_ns);

-- The tape files a backup's stream went to, in order; stream_offset is where each one begins.
CREATE TABLE backup_tapes (
  backup_id INTEGER NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  label TEXT NOT NULL,
  file_number INTEGER NOT NULL,
  stream_offset INTEGER NOT NULL,
  PRIMARY KEY (backup_id, seq)
);
CREATE INDEX backup_tapes_label ON backup_tapes (label);

-- One row per object a backup copied. An incremental holds only what changed: what a directory
-- held comes from listings.
CREATE TABLE files (
  backup_id INTEGER NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
  dir TEXT NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  size INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  atime_ns INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  fileid INTEGER NOT NULL,
  sha256 TEXT,
  link_target TEXT,
  hard_link_of TEXT,
  tape_label TEXT,
  tape_file INTEGER,
  stream_offset INTEGER NOT NULL,
  changed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX files_path ON files (dir, name, backup_id);
CREATE INDEX files_name ON files (name);
CREATE INDEX files_backup ON files (backup_id, stream_offset);

-- What each directory held when a backup ran: names joined by '/', which no name contains.
CREATE TABLE listings (
  backup_id INTEGER NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
  dir TEXT NOT NULL,
  names TEXT NOT NULL,
  PRIMARY KEY (backup_id, dir)
) WITHOUT ROWID;
CREATE INDEX listings_dir ON listings (dir, backup_id);
`

/** MIGRATIONS[v] takes a catalog from version v to v + 1 (MIGRATIONS[0] creates it). */
const MIGRATIONS: readonly string[] = [V1]

/**
 * Opens (creating when asked) a catalog file: WAL, foreign keys on, integers read as bigint.
 * Every failure is a CatalogError naming the file.
 */
export function openDatabase(file: string, opts: { create: boolean; readonly?: boolean }): Db {
  let db: Db
  try {
    db = new Database(file, { fileMustExist: !opts.create, readonly: opts.readonly === true })
  } catch (err) {
    throw new CatalogError('CATALOG_NOT_FOUND', `${file}: cannot open the catalog: ${err instanceof Error ? err.message : String(err)}`)
  }
  try {
    check(db, file, opts.readonly === true)
    return db
  } catch (err) {
    db.close()
    if (err instanceof CatalogError) throw err
    // SQLITE_NOTADB, SQLITE_CORRUPT: better-sqlite3 says so only when the first page is read.
    throw new CatalogError('CATALOG_CORRUPT', `${file}: not a usable catalog: ${err instanceof Error ? err.message : String(err)}`)
  }
}

function check(db: Db, file: string, readonly: boolean): void {
  if (!readonly) db.pragma('journal_mode = WAL')
  db.pragma('foreign_keys = ON')
  // NORMAL under WAL: a power cut may lose the last transactions, never corrupt the file; the
  // catalog can be rebuilt from the tapes' file history, a backup stall costs more.
  db.pragma('synchronous = NORMAL')
  // The path index takes each backup's rows all over its key range (a new backup_id under every
  // (dir, name)): with SQLite's default 2 MB cache those inserts go to disk page by page, a 100,000-row
  // ingest took 10 to 30 s in bench/catalog.ts; a cache that holds the indices makes it seconds.
  db.pragma('cache_size = -131072')
  db.pragma('temp_store = MEMORY')
  db.defaultSafeIntegers(true)
  const appId = Number(db.pragma('application_id', { simple: true }))
  const version = Number(db.pragma('user_version', { simple: true }))
  const tables = Number(db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get())
  if (appId === 0 && version === 0 && tables === 0) {
    if (readonly) throw new CatalogError('CATALOG_FOREIGN', `${file}: empty database, not a catalog`)
    migrate(db, 0)
    return
  }
  if (appId !== APPLICATION_ID) throw new CatalogError('CATALOG_FOREIGN', `${file}: a SQLite database of another program (application_id ${appId}), not a tsnfs catalog`)
  if (version > SCHEMA_VERSION) throw new CatalogError('CATALOG_VERSION', `${file}: catalog schema version ${version} is newer than this tsnfs knows (${SCHEMA_VERSION})`)
  if (version < SCHEMA_VERSION) {
    if (readonly) throw new CatalogError('CATALOG_VERSION', `${file}: catalog schema version ${version} needs migrating to ${SCHEMA_VERSION}; open it writable once`)
    migrate(db, version)
  }
  // No quick_check here: it reads every page (seconds on a large catalog) at each open; a page
  // found corrupt later fails its statement with SQLITE_CORRUPT, which callers report.
}

function migrate(db: Db, from: number): void {
  db.transaction(() => {
    for (let v = from; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v] ?? '')
    db.pragma(`application_id = ${APPLICATION_ID}`)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  })()
}
