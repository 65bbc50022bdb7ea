/*
 * The cluster backend's tables (JuiceFS's SQL layout, pkg/meta/sql.go, in our
 * own words). One database holds one file system; every tsnfs server that
 * exports it reads and writes these rows, and nothing a request depends on
 * lives anywhere else. Ids are never reused (64-bit counters), so a handle
 * (export id, inode, gen) names the same object on every server forever.
 *
 * Types are the common subset of PostgreSQL, CockroachDB and YugabyteDB:
 * BIGINT, INTEGER, SMALLINT, TEXT, BYTEA; no sequences (CockroachDB's are
 * slow and not gap-free), no triggers, no stored procedures.
 */

/**
 * Bumped when a table changes; a server refuses a database of another format.
 * 3: tsnfs_node.used, and COUNTER.usedInodes kept by every server (format 2
 * servers would neither write the column nor count inodes).
 */
export const SCHEMA_FORMAT = 3

/** File type codes in tsnfs_node.type and tsnfs_edge.type. */
export const TYPE_CODE = { file: 1, dir: 2, symlink: 3, block: 4, char: 5, socket: 6, fifo: 7 } as const

/** Fixed data layout: a file is cut into chunks; a slice (one flushed write) is stored as blocks. */
export const CHUNK_SIZE = 64 * 1024 * 1024
export const BLOCK_SIZE = 4 * 1024 * 1024

/** The root directory's inode (fileid). */
export const ROOT_INODE = 1n

/** Rows of tsnfs_setting written by `tsnfs cluster init`. */
export const SETTING = {
  format: 'format',
  /** Hex of the 32-byte handle MAC key every server of this file system uses (server/nfs3/filehandle.ts). */
  handleKey: 'handle_key',
  /** 'postgres' or the s3:// URL (without credentials) the data lives at. */
  data: 'data',
  /** Blocks of at most this many bytes live in tsnfs_block, not the bucket ('0' or absent: none; vfs/cluster/tiered-store.ts). */
  smallBlocks: 'small_blocks',
  created: 'created',
} as const

/** Rows of tsnfs_counter. */
export const COUNTER = {
  /** Next inode number to hand out (servers take batches). */
  nextInode: 'next_inode',
  /** Next slice id (servers take batches). */
  nextSlice: 'next_slice',
  /**
   * Bytes referenced by live slices (fsstat). Attached bytes are added by
   * each server about once a second (data/attach.ts); released ones in the
   * releasing transaction.
   */
  usedBytes: 'used_bytes',
  /**
   * Node rows (fsstat's files). New nodes and removed directories are
   * applied by each server about once a second (meta/counter-delta.ts);
   * released files in the releasing transaction (meta/delfile.ts).
   */
  usedInodes: 'used_inodes',
} as const

/** The NOTIFY channel servers announce changed inodes on ("<session id>:<inode>,<inode>..."). */
export const CHANGE_CHANNEL = 'tsnfs_change'

export const SCHEMA_SQL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS tsnfs_setting (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS tsnfs_counter (name TEXT PRIMARY KEY, value BIGINT NOT NULL)`,
  // Exports registered by servers: every server must give a path the same id (handles carry it).
  `CREATE TABLE IF NOT EXISTS tsnfs_export (path TEXT PRIMARY KEY, export_id BIGINT NOT NULL)`,
  // One row per inode. parent: a directory's parent (for ".."); 0 for other types (they may have
  // several links). next_cookie: a directory's next readdir cookie (1 and 2 are "." and "..").
  // ver: bumped by every metadata change of the row and named in its notification, so a server
  // can tell a change it already holds from a newer one (vfs/cluster/meta/cache.ts; format 2).
  // used: bytes of stored slices the file's chunk records show, added by each attach, replaced
  // by compaction, cut to the size by a truncation (format 3; GETATTR's used, meta/node.ts).
  `CREATE TABLE IF NOT EXISTS tsnfs_node (
    inode BIGINT PRIMARY KEY,
    gen INTEGER NOT NULL,
    type SMALLINT NOT NULL,
    mode INTEGER NOT NULL,
    uid BIGINT NOT NULL,
    gid BIGINT NOT NULL,
    nlink INTEGER NOT NULL,
    size BIGINT NOT NULL,
    rdev_major INTEGER NOT NULL DEFAULT 0,
    rdev_minor INTEGER NOT NULL DEFAULT 0,
    atime_sec BIGINT NOT NULL, atime_nsec INTEGER NOT NULL,
    mtime_sec BIGINT NOT NULL, mtime_nsec INTEGER NOT NULL,
    ctime_sec BIGINT NOT NULL, ctime_nsec INTEGER NOT NULL,
    parent BIGINT NOT NULL DEFAULT 0,
    target BYTEA,
    verifier BYTEA,
    next_cookie BIGINT NOT NULL DEFAULT 3,
    ver BIGINT NOT NULL DEFAULT 1,
    used BIGINT NOT NULL DEFAULT 0
  )`,
  // Directory entries. A cookie is unique in its directory and never reused, so a listing resumed
  // after a removal neither repeats nor skips (vfs/types.ts readdir).
  `CREATE TABLE IF NOT EXISTS tsnfs_edge (
    parent BIGINT NOT NULL,
    name BYTEA NOT NULL,
    inode BIGINT NOT NULL,
    type SMALLINT NOT NULL,
    cookie BIGINT NOT NULL,
    PRIMARY KEY (parent, name)
  )`,
  `CREATE UNIQUE INDEX IF NOT EXISTS tsnfs_edge_cookie ON tsnfs_edge (parent, cookie)`,
  `CREATE INDEX IF NOT EXISTS tsnfs_edge_inode ON tsnfs_edge (inode)`,
  // A chunk's slices, oldest first, each a 24-byte record (vfs/cluster/data/slice.ts); a later
  // slice covers earlier ones where they overlap. Slice id 0 reads as zeros (truncation).
  `CREATE TABLE IF NOT EXISTS tsnfs_chunk (
    inode BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    slices BYTEA NOT NULL,
    PRIMARY KEY (inode, idx)
  )`,
  // References to each slice's blocks from chunk rows; blocks are deleted when refs reaches 0.
  `CREATE TABLE IF NOT EXISTS tsnfs_slice_ref (id BIGINT PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL)`,
  // Slices whose blocks a server is uploading but has not yet attached to a chunk: if the server
  // dies, another deletes the blocks once the session is stale.
  `CREATE TABLE IF NOT EXISTS tsnfs_pending_slice (id BIGINT PRIMARY KEY, sid BIGINT NOT NULL, size INTEGER NOT NULL, created BIGINT NOT NULL)`,
  // Inodes whose last link is gone: their chunks are released in the background by any server.
  `CREATE TABLE IF NOT EXISTS tsnfs_delfile (inode BIGINT PRIMARY KEY, size BIGINT NOT NULL, since BIGINT NOT NULL)`,
  // Servers using this file system, with a heartbeat (milliseconds since the epoch).
  `CREATE TABLE IF NOT EXISTS tsnfs_session (
    sid BIGINT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started BIGINT NOT NULL,
    heartbeat BIGINT NOT NULL,
    info TEXT NOT NULL DEFAULT ''
  )`,
  // Blocks kept in the database (data=postgres, and small files when that option is on).
  `CREATE TABLE IF NOT EXISTS tsnfs_block (key TEXT PRIMARY KEY, data BYTEA NOT NULL, created BIGINT NOT NULL)`,
]
