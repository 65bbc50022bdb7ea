/*
 * The storage interface. It knows no NFS and no XDR: it speaks file ids,
 * generations, attributes and errno codes (VfsError). Backends make each
 * operation atomic on their own state; the server adds protocol, handles
 * and permission policy on top.
 */

export type FileType = 'file' | 'dir' | 'symlink' | 'block' | 'char' | 'socket' | 'fifo'

/** Immutable, so backends may share one between inodes and attribute snapshots. */
export interface Timespec {
  readonly sec: number
  readonly nsec: number
}

/** A stored object: its id (unique in the backend, never 0) and a generation that changes when an id is reused. */
export interface FileRef {
  id: bigint
  gen: number
}

export interface Attr {
  type: FileType
  /** Permission bits only (the low 12 bits: setuid, setgid, sticky, rwx x3). */
  mode: number
  nlink: number
  uid: number
  gid: number
  size: bigint
  /** Bytes of storage actually used. */
  used: bigint
  rdev: { readonly major: number; readonly minor: number }
  fileid: bigint
  gen: number
  atime: Timespec
  mtime: Timespec
  ctime: Timespec
}

/** What a setattr changes; 'now' means the server's clock. */
export interface SetAttr {
  mode?: number
  uid?: number
  gid?: number
  size?: bigint
  atime?: Timespec | 'now'
  mtime?: Timespec | 'now'
}

/**
 * Who a call acts for (the credentials after squashing), for a backend that decides by identity:
 * the engine lets root (and the superblock's s_def_resuid/s_def_resgid) into the file system's
 * reserved blocks, as ext4 does. Passed explicitly rather than through AsyncLocalStorage: on Node 20
 * that turns on promise hooks for the whole process (about 2.7x the CPU of every await).
 */
export interface Caller {
  uid: number
  gid: number
  gids?: readonly number[]
}

/** The owner a new object gets (the caller's credentials after squashing). */
export interface Owner {
  uid: number
  gid: number
  /** The caller, where its gid is not the owner's (a setgid directory gives its group). */
  caller?: Caller
}

/** Attributes of a directory before and after a change, for weak cache consistency. */
export interface DirChange {
  /** null when the backend could not take them atomically with the change. */
  before: Attr | null
  after: Attr
}

export interface Created {
  ref: FileRef
  attr: Attr
  dir: DirChange
}

export type Stability = 'unstable' | 'data_sync' | 'file_sync'

export type CreateMode =
  | { how: 'unchecked'; attr: SetAttr }
  | { how: 'guarded'; attr: SetAttr }
  /** The verifier is kept with the file so a retransmitted create succeeds (RFC 1813 §3.3.8). */
  | { how: 'exclusive'; verifier: Buffer }

export interface DirEntry {
  /** May be the backend's own buffer: read it, copy it to keep it, never modify it. */
  name: Buffer
  fileid: bigint
  /** Resumes the listing after this entry; never 0. */
  cookie: bigint
  /** Present when the backend can give it cheaply (READDIRPLUS). */
  ref?: FileRef
  /**
   * The entry's attributes, when the backend has them at no extra cost (it
   * stat'ed the entry to list it): READDIRPLUS then needs no getattr per entry.
   */
  attr?: Attr
}

export interface ReadResult {
  data: Buffer
  eof: boolean
  attr: Attr
  /**
   * Present when `data` is lent from the backend's own storage or buffers:
   * the backend leaves those bytes alone until release() is called and may
   * reuse the memory after it. Call it once the data has been sent; a loan
   * never released costs reuse, never correctness or a leak.
   */
  release?: () => void
}

export interface DirPage {
  entries: DirEntry[]
  /** True when the last entry returned is the last in the directory. */
  eof: boolean
}

export interface FsStat {
  totalBytes: bigint
  freeBytes: bigint
  availBytes: bigint
  totalFiles: bigint
  freeFiles: bigint
  availFiles: bigint
}

export interface PathConf {
  linkMax: number
  nameMax: number
  noTrunc: boolean
  chownRestricted: boolean
  caseInsensitive: boolean
  casePreserving: boolean
}

export interface VfsCapabilities {
  maxFileSize: bigint
  /** Finest timestamp step the backend keeps. */
  timeDelta: Timespec
  hardLinks: boolean
  symlinks: boolean
  /** Device nodes can be created (MKNOD of block/char). */
  deviceNodes: boolean
  canSetTime: boolean
}

export interface Vfs {
  /** The root of the tree this backend stores. */
  root(): FileRef
  capabilities(): VfsCapabilities

  /** ESTALE if the object is gone or the generation does not match. */
  getattr(f: FileRef): Promise<Attr>
  /** `.` and `..` resolve within the tree; `..` of the root is the root. Never follows symlinks. */
  lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }>
  /** Returns the attributes before (for wcc) and after the change. */
  setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }>
  readlink(f: FileRef): Promise<Buffer>
  read(f: FileRef, offset: bigint, count: number): Promise<ReadResult>
  write(
    f: FileRef,
    offset: bigint,
    data: Buffer,
    stable: Stability,
    caller?: Caller,
  ): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }>
  /** Flush [offset, offset+count) to stable storage; count 0 means to the end. */
  commit(f: FileRef, offset: bigint, count: number): Promise<{ before: Attr; after: Attr }>

  create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created>
  mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created>
  symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created>
  mknod(
    dir: FileRef,
    name: Buffer,
    type: 'block' | 'char' | 'socket' | 'fifo',
    rdev: { major: number; minor: number },
    attr: SetAttr,
    owner: Owner,
  ): Promise<Created>
  remove(dir: FileRef, name: Buffer): Promise<DirChange>
  rmdir(dir: FileRef, name: Buffer): Promise<DirChange>
  rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, caller?: Caller): Promise<{ from: DirChange; to: DirChange }>
  link(f: FileRef, dir: FileRef, name: Buffer, caller?: Caller): Promise<{ attr: Attr; dir: DirChange }>

  /**
   * Up to `max` entries after `cookie` (0 = from the start), `.` and `..`
   * included. Cookies stay valid while the directory changes: a listing
   * resumed after a removal neither repeats nor skips surviving entries.
   */
  readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage>

  fsstat(f: FileRef): Promise<FsStat>
  pathconf(f: FileRef): Promise<PathConf>

  /**
   * Make the changes already made to these objects durable (knfsd's commit_metadata): for a
   * directory its entries, for any object its inode. RFC 1813 §1.6 wants CREATE, MKDIR,
   * SYMLINK, MKNOD, REMOVE, RMDIR, RENAME and LINK on stable storage before the reply; the
   * server calls this after them on a `sync` export. Absent where every change is durable on
   * return already (the engine's journal, the cluster's database) or never (memory). An object
   * gone meanwhile needs nothing; a failed flush is EIO.
   */
  commitMetadata?(refs: readonly FileRef[]): Promise<void>

  /** Release resources (open files, timers). */
  close(): Promise<void>

  /** The caches this backend keeps (optional): the server shows them in its metrics and trims them when idle. */
  caches?(): readonly VfsCache[]
}

/** Counts of a cache's lookups since it was made. */
export interface VfsCacheCounts {
  hits: number
  misses: number
  /** Entries dropped to stay within the limit (not those an idle trim let go). */
  evictions: number
}

/** A cache a backend keeps, as the server's memory accounting sees it. */
export interface VfsCache {
  /** Short name within the backend: `blocks`, `inodes`. */
  readonly name: string
  /** Bytes held now (an estimate where entries are objects). */
  bytes(): number
  /** The byte bound it keeps to (absent: none of its own). */
  limit?(): number
  /** Let go of what can be dropped safely, down to a low mark; returns the bytes let go. */
  trim(): number
  counts?(): VfsCacheCounts
}
