/*
 * What the replicating layer records (DESIGN.md §5, seed 000): each change
 * to the tree, in the one id space every node shares. A `FileRef` here is a
 * shared ref (a "vid"): the primary's layer assigns it when an object is
 * created, every standby maps it to its own backend's object (id-map.ts).
 *
 * A change says what happened, not how to redo a request: a new object's
 * mode and owner are what the primary stored, `times` are the primary's
 * resulting atime/mtime of the objects the change touched (a standby sets
 * them, so clients see the same mtimes after a takeover). The wire and log
 * encoding is server/replication/ (xdr/spec/replication.x `repl_change`).
 */
import type { FileRef, Timespec } from '../types.ts'

/** The times the primary reported for one object after the change. */
export interface ChangeTimes {
  ref: FileRef
  atime: Timespec
  mtime: Timespec
}

/** A new object as the primary stored it. */
export interface NewObject {
  dir: FileRef
  name: Buffer
  ref: FileRef
  mode: number
  uid: number
  gid: number
}

/** A SETATTR with 'now' resolved to the primary's clock. */
export interface ResolvedSetAttr {
  mode?: number
  uid?: number
  gid?: number
  size?: bigint
  atime?: Timespec
  mtime?: Timespec
}

export type ChangeBody =
  /** `exclusive`: the 8-byte verifier of an exclusive CREATE (kept, RFC 1813 §3.3.8), else null. */
  | { op: 'create'; obj: NewObject; exclusive: Buffer | null }
  | { op: 'mkdir'; obj: NewObject }
  | { op: 'symlink'; obj: NewObject; target: Buffer }
  | { op: 'mknod'; obj: NewObject; type: 'block' | 'char' | 'socket' | 'fifo'; rdev: { major: number; minor: number } }
  /**
   * `data` is null in the change log: the range is read from the primary
   * when the change is shipped (a later change to the same range is shipped
   * after it, so the standby converges). On the wire it holds `length` bytes.
   */
  | { op: 'write'; ref: FileRef; offset: bigint; length: number; data: Buffer | null }
  | { op: 'setattr'; ref: FileRef; set: ResolvedSetAttr }
  | { op: 'remove'; dir: FileRef; name: Buffer }
  | { op: 'rmdir'; dir: FileRef; name: Buffer }
  | { op: 'rename'; fromDir: FileRef; fromName: Buffer; toDir: FileRef; toName: Buffer }
  | { op: 'link'; ref: FileRef; dir: FileRef; name: Buffer }

/** At most this many `times` per change (a rename touches two directories and the renamed object). */
export const MAX_CHANGE_TIMES = 4

export type Change = ChangeBody & { times: ChangeTimes[] }

/**
 * What a change did to the primary's id map (id-map.ts): a new object bound to its vid, a
 * removed one's vid unbound. The change log carries them with the change, so the map needs no
 * fdatasync of its own before a reply: at start the primary redoes those logged after the map's
 * last checkpoint (server/replication/map-recovery.ts). Never shipped (a standby's objects are its own).
 */
export type MapEdit =
  | { kind: 'bind'; vid: FileRef; local: FileRef }
  | { kind: 'unbind'; vid: FileRef }

/** At most this many map edits per change (a CREATE binds one object, a REMOVE or RENAME unbinds one). */
export const MAX_MAP_EDITS = 4

/**
 * Where the primary's layer sends its changes (server/replication's change
 * log and sender implement it).
 */
export interface ChangeSink {
  /**
   * Records a change and returns its sequence number (1, 2, 3, ... in call
   * order, never reused). Synchronous, so the layer appends while it still
   * holds the locks that ordered the change against conflicting ones.
   * `edits` are the id map's binds and unbinds the change made; a sink that
   * keeps them (the change log) makes them as durable as the change, and the
   * layer relies on that only when told so (ReplicatingVfsOptions.sinkKeepsEdits).
   * `data`, for a WRITE appended without its data: the bytes it wrote, given only when no
   * overlapping WRITE of the same file ran beside it (so they are the range's bytes as of this
   * change). A sink may keep them in memory for shipping (never logged); it must not change them.
   */
  append(change: Change, edits?: readonly MapEdit[], data?: Buffer): bigint
  /**
   * Resolves once change `seq` and every one before it are as durable as a
   * reply that promises stability needs: in the local change log on disk,
   * and in sync mode also acknowledged by every live standby. Rejects with a
   * VfsError (EIO) when that cannot be done.
   */
  durable(seq: bigint): Promise<void>
  /**
   * A sink that replicates (the change log): durable() split in two, for a caller that
   * waits for the standbys itself (held-changes.ts). `durableHere` resolves once the change
   * is in the local log on disk; `replicated` once the standbys acknowledged it.
   */
  split?: SinkSplit | undefined
}

export interface SinkSplit {
  exportId: number
  durableHere(seq: bigint): Promise<void>
  replicated(seq: bigint): Promise<void>
}

/**
 * A standby's side: applies changes in sequence order to its own backend
 * (vfs/replica/applier.ts implements it).
 */
export interface ChangeTarget {
  /**
   * Applies change `seq` (exactly the one after the previous call's).
   * Idempotent from the last durable position: after a crash the changes
   * since position() are applied again and converge to the same state.
   */
  apply(seq: bigint, change: Change): Promise<void>
  /** Makes everything applied durable (data, metadata, the id map) and records the position; returns it. */
  flush(): Promise<bigint>
  /** The last change made durable by flush() (0n before any). */
  position(): bigint
}
