/**
 * How file-system code changes metadata: through a handle on the running transaction. The
 * transaction manager behind it decides how the change becomes durable — the jbd2 journal for a
 * mounted engine (jbd2/), or plain in-place writes for tools that own the image alone (mkfs, fsck
 * --repair run on an unmounted image) — so the allocator, inode, extent and directory code is
 * written once against this interface.
 *
 * The model is jbd2's (Documentation/filesystems/ext4/journal.rst): many operations join one
 * running transaction (group commit); a transaction commits only when every operation that joined
 * it has ended, so a commit never captures half an operation. Blocks are shared: the buffer `get`
 * returns is the one live copy in the cache, which later operations see at once (as the page cache
 * does); the manager snapshots what it commits, so an operation of the next transaction may change
 * a buffer while the previous one is being written.
 *
 * Rules for callers:
 * - change a metadata buffer only between `begin()` and `end()`, and call `dirty(block)` after
 *   changing it (checksums inside the block are the caller's to keep right before `end()`);
 * - file data is not journaled (ordered mode): write a file's newly allocated data blocks to the
 *   device and await those writes *before* `end()` — the commit flushes the device before it writes
 *   its commit block, so data is on disk before the metadata that points to it;
 * - a block freed by a transaction must not be reused before that transaction is durable (a crash
 *   would leave the old owner pointing at new contents): the allocator hands such blocks back from
 *   an `afterCommit` callback. A freed *metadata* block is also `revoke`d, so replaying an older
 *   transaction that logged it never overwrites what the block holds next.
 */

import type { Caller } from '../../types.ts'

export interface MetaTxn {
  /** The transaction this handle joined; pass to `waitDurable` for a stable reply. */
  readonly tid: number
  /** Who the operation acts for, set by the operation before it allocates (the reserve is root's). */
  caller?: Caller | undefined
  /** The live buffer of metadata block `block` (one file-system block), read through the cache. */
  get(block: number): Promise<Buffer>
  /** A newly allocated metadata block: zero-filled, already dirty, never read from the device. */
  fresh(block: number): Buffer
  /** This handle changed `block` (which it obtained from `get` or `fresh`). */
  dirty(block: number): void
  /** A metadata block freed here: drop it from the cache and keep replay from writing it again. */
  revoke(block: number): void
  /** Run `fn` once this handle's transaction is durable (how freed blocks return to the allocator). */
  afterCommit(fn: () => void): void
  /**
   * Optional: is `block` in memory now (cached, or being read)? A caller that knows every byte of a
   * block it is about to write is unused may then take it `fresh` instead of reading it, as ext4's
   * __ext4_get_inode_loc zeroes an inode-table block whose other inodes are all free. Only for a
   * block not in memory: the device copy is then the newest, so nothing else is lost.
   */
  inMemory?(block: number): boolean
}

export interface WaitOptions {
  /**
   * Wait without asking for the commit yet: the caller knows more changes are queued behind it
   * that will join the same transaction, and the last of them asks. The commit then carries the
   * whole burst instead of starting with its first change (jbd2 waits for a batch likewise). The
   * manager asks by itself after a short delay, so a deferred wait is never left waiting.
   */
  defer?: boolean
}

export interface TxnManager {
  readonly blockSize: number
  /** Join the running transaction (waits only while a commit is taking its snapshot). */
  begin(): Promise<MetaTxn>
  /** The operation is complete; its changes belong to `h.tid`. */
  end(h: MetaTxn): void
  /**
   * Resolves when transaction `tid` is durable. Asks for a commit if `tid` is still running;
   * callers arriving while one is in flight share the next commit (group commit).
   */
  waitDurable(tid: number, opts?: WaitOptions): Promise<void>
  /** A metadata block for reading only (cached; the live copy, do not change it). */
  read(block: number): Promise<Buffer>
  /** Commit everything, write it home, and leave the image clean (no recovery needed). */
  close(): Promise<void>
  /**
   * Stop for good without committing the running transaction (jbd2_journal_abort, which ext4 calls
   * on an error with errors=remount-ro): an operation that failed half-way leaves its changes in
   * the running transaction, and committing them would build on the damage that stopped it. Every
   * later begin, waitDurable and close rejects TXN_ABORTED; what is durable stays as it was, and
   * the next open's recovery replays it. A no-op once aborted.
   */
  abort(reason: unknown): void
  /**
   * Quiesce (ext4_freeze): new begins wait, handles running end, everything is committed and
   * written home, and the log is left empty with needs_recovery cleared, durably. Absent where
   * nothing is ever written (a read-only manager).
   */
  freeze?(): Promise<void>
  /** Undo freeze: needs_recovery set again, durably, and the begins that waited go on. */
  thaw?(): Promise<void>
}

export class TxnError extends Error {
  readonly code: 'TXN_CLOSED' | 'TXN_ENDED' | 'TXN_NOT_HELD' | 'TXN_ABORTED'
  constructor(code: TxnError['code'], message: string, options?: ErrorOptions) {
    super(`${code}: ${message}`, options)
    this.name = 'TxnError'
    this.code = code
  }
}

/**
 * What the journaled manager needs from the log; jbd2/ implements it over the journal inode.
 * Space is counted in log blocks: a commit of n metadata blocks and r revokes costs its descriptor
 * blocks, the n blocks, its revoke blocks and one commit block (`cost`).
 */
export interface TxnLog {
  /** Log blocks available to new commits before `release` must free some. */
  readonly free: number
  cost(blocks: number, revokes: number): number
  /**
   * Write transaction `tid` (descriptors + blocks, revokes, then the commit block once the rest is
   * on the medium) and resolve when it is durable. `tid`s are consecutive.
   */
  commit(tid: number, blocks: ReadonlyArray<{ block: number; data: Buffer }>, revokes: readonly number[]): Promise<void>
  /**
   * Every transaction up to and including `tid` has been written to its home locations and the
   * device flushed: give its log space back (moves the journal's tail; durable on return).
   */
  release(tid: number): Promise<void>
  /** Leave the log empty and clean (s_start = 0): called after a final checkpoint. */
  close(): Promise<void>
  /**
   * As close, but the log stays usable: after a full checkpoint, mark it empty (s_start = 0) and
   * clear needs_recovery, durably, so a block copy of the device is a clean file system (a freeze).
   */
  quiesce?(): Promise<void>
  /** After quiesce: point the log at its head again and set needs_recovery, durably, before the next commit. */
  resume?(): Promise<void>
}
