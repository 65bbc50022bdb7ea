/*
 * The data half of the cluster backend, as the metadata half (ClusterVfs)
 * calls it. A file is cut into CHUNK_SIZE chunks; each flushed write becomes
 * a slice of immutable BLOCK_SIZE blocks in the object store, recorded in
 * the chunk's row; reads merge a chunk's slices, newest on top.
 *
 * UNSTABLE writes are staged in this server's memory and reach the store at
 * COMMIT (or under memory pressure, or after a few seconds): RFC 1813 §3.3.7
 * lets a server lose them, and the write verifier (one per server) tells the
 * client to send them again. Anything acknowledged as DATA_SYNC or FILE_SYNC,
 * and anything COMMITted, is in the object store and the database first.
 */
import type { Stability, Timespec, VfsCache } from '../../types.ts'
import type { SqlTx } from '../sql.ts'

/** What this server holds for an inode beyond the database: the file's size and mtime as seen here. */
export interface StagedState {
  size: bigint
  mtime: Timespec
}

export interface FileData {
  /** Staged (unflushed) state of the inode on this server, if any. */
  staged(inode: bigint): StagedState | undefined
  /**
   * Up to `count` bytes at `offset` of a file whose size is `size` (staged
   * data included, as ClusterVfs computed it). Holes and zero slices read as
   * zeros; never past `size`. A block missing from the store is EIO.
   */
  read(inode: bigint, offset: bigint, count: number, size: bigint): Promise<Buffer>
  /**
   * 'unstable' stages the bytes and resolves at once. Otherwise the inode's
   * staged bytes and these are uploaded, then attached to their chunks in
   * one transaction that also sets the node's size (to at least the end
   * written), mtime and ctime, and announces the change; it resolves after
   * the commit. `now` is the write's time (it becomes mtime/ctime).
   */
  write(inode: bigint, offset: bigint, data: Buffer, stable: Stability, now: Timespec): Promise<void>
  /** Upload and attach everything staged for the inode (COMMIT); resolves after the commit. */
  flush(inode: bigint): Promise<void>
  /** Flush every inode's staged data (server shutdown, memory pressure). */
  flushAll(): Promise<void>
  /** Forget staged bytes of the inode (its last link is gone). */
  discard(inode: bigint): void
  /**
   * Within the caller's transaction (setattr of size, after flush(inode)):
   * bytes from `newSize` read as zeros from now on, whole chunks past it are
   * released. The caller sets the node's size.
   */
  truncate(tx: SqlTx, inode: bigint, oldSize: bigint, newSize: bigint): Promise<void>
  /** Within the caller's transaction: the inode is gone for good; its chunks lose their slice references. */
  release(tx: SqlTx, inode: bigint): Promise<void>
  /** Another server changed the inode: forget cached slice lists (cached blocks stay valid, they are immutable). */
  invalidate(inode: bigint): void
  /** Forget every cached slice list (the change feed was interrupted). */
  invalidateAll(): void
  /** Its caches and staged writes, for the server's memory accounting (vfs/cluster/caches.ts). */
  caches?(): readonly VfsCache[]
  /** Apply the used bytes attached here to COUNTER.usedBytes now, not at the next tick. */
  flushUsage?(): Promise<void>
  close(): Promise<void>
}
