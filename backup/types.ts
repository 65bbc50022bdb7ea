/*
 * The backup format's interface (issue 16). backup/ knows nothing of NDMP: the NDMP data service
 * (server/ndmp), our backup manager (dma/) and the CLI all drive it through these types. A backup
 * is a POSIX pax tar stream of one tree of a Vfs (any backend); levels follow dump's rule (level N
 * copies what changed since the newest backup of a lower level); deletions and renames travel in
 * per-directory listings so a restore of a chain reproduces the tree as it was.
 */
import type { FileRef, FileType, Timespec, Vfs } from '../vfs/types.ts'

/** Where backup bytes go. write() resolves once the chunk is accepted (that is the backpressure). */
export interface ByteSink {
  write(chunk: Buffer): Promise<void>
}

/** Where restore bytes come from. read() resolves null at the end of the stream. */
export interface ByteSource {
  read(max: number): Promise<Buffer | null>
}

/** The tree a backup reads. `live` false: a snapshot or frozen copy (consistent); true: read live, said in the log. */
export interface BackupTree {
  vfs: Vfs
  root: FileRef
  live: boolean
  /** The name the catalog and the logs use: the export path, as in NDMP's FILESYSTEM. */
  name: string
}

/** One object as the backup recorded it: the DMA's file history and the catalog's rows. */
export interface FileHistoryEntry {
  /** Relative to the backup root, '/'-separated, no leading '/'; '' is the root itself. */
  path: string
  type: FileType
  mode: number
  uid: number
  gid: number
  size: bigint
  atime: Timespec
  mtime: Timespec
  ctime: Timespec
  /** The source's fileid: NDMP FH node numbers and hard-link detection. */
  fileid: bigint
  /** Byte offset of the object's first header (its pax extended header, if any) in the uncompressed stream. */
  offset: bigint
  /** Set for symlinks. */
  linkTarget?: string
  /** Set for a second name of a hard-linked file: the path stored first. */
  hardLinkOf?: string
  /** SHA-256 (hex) of a regular file's data as read at backup time. */
  sha256?: string
  /** The file changed while it was read (size or mtime moved): its copy may be torn. */
  changedDuringBackup?: boolean
}

export type LogLevel = 'info' | 'warn' | 'error'

/** A level's base: the backup of a lower level this one is relative to (dump's rule). */
export interface LevelBase {
  level: number
  /** When that backup started: objects with mtime or ctime at or after it are copied. */
  startedAt: Timespec
  /** Its directory listings (dir path -> entries), so new names, renames and deletions are seen. */
  listingId: string
}

export interface BackupRequest {
  level: number
  /** null for level 0, or when no lower level exists (then the backup is full and says so). */
  base: LevelBase | null
  /** Glob patterns (matched against the relative path and the base name) to leave out. */
  exclude?: string[]
  compress?: 'gzip' | 'brotli' | null
  onFile?: (entry: FileHistoryEntry) => void
  onLog?: (level: LogLevel, message: string) => void
  signal?: AbortSignal
}

/** What each directory held when a backup ran (dir path -> its entries), recorded by every level. */
export type DirListing = Map<string, Array<{ name: string; fileid: bigint; type: FileType }>>

export interface BackupSummary {
  level: number
  startedAt: Timespec
  files: number
  dirs: number
  /** Bytes of the (uncompressed) stream. */
  bytes: bigint
  /** Paths that changed while they were read. */
  changed: string[]
  /** The listing recorded for later levels to compare against (kept by the level store under listingId). */
  listingId: string
  listing: DirListing
}

/** Where a restore writes: a tree of a Vfs (an export), or a directory of this host. */
export type RestoreTarget =
  | { kind: 'vfs'; vfs: Vfs; root: FileRef; owner: { uid: number; gid: number } }
  | { kind: 'host'; dir: string }

/** One path to restore (a directory brings its subtree), to its place or renamed to `dest`. */
export interface RestoreSelection {
  path: string
  dest?: string
}

export interface RestoreRequest {
  /** Absent: everything in the stream. */
  select?: RestoreSelection[]
  /** Replace existing objects; false: an existing object is kept and the log says so. */
  overwrite: boolean
  /** Remove what the stream's directory listings say was deleted (restoring a chain in order). */
  applyDeletions: boolean
  onFile?: (entry: FileHistoryEntry) => void
  onLog?: (level: LogLevel, message: string) => void
  signal?: AbortSignal
}

export interface RestoreSummary {
  files: number
  dirs: number
  bytes: bigint
  skipped: string[]
  deleted: string[]
}

/** A corrupt or truncated stream: names the stream and the byte offset where it went wrong. */
export class BackupFormatError extends Error {
  readonly offset: bigint
  readonly source: string
  constructor(source: string, offset: bigint, message: string) {
    super(`${source}: at byte ${offset}: ${message}`)
    this.name = 'BackupFormatError'
    this.offset = offset
    this.source = source
  }
}

/**
 * The format as its callers see it (backup/index.ts provides it): the NDMP data service, the CLI and
 * the DMA's verify use only this.
 */
export interface BackupFormat {
  /** Writes one backup of `tree` to `sink`; resolves once the last byte was accepted. */
  writeBackup(tree: BackupTree, sink: ByteSink, req: BackupRequest): Promise<BackupSummary>
  /** Reads one stream (one level) from `source` into `target`; `sourceName` names it in errors. */
  readBackup(source: ByteSource, sourceName: string, target: RestoreTarget, req: RestoreRequest): Promise<RestoreSummary>
}
