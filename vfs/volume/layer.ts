import type { BlockDevice } from '../engine/blockdev/block-device.ts'

/**
 * What every volume layer shares (issue 14, DESIGN §5): a layer is a BlockDevice built on other
 * BlockDevices, so layers nest (a mirror of stripes, RAID-5 of partitions) and the storage engine
 * sits on top of any of them unchanged. Layers know nothing of files, NFS or the engine; they
 * import only the block-device interface and this folder.
 */

export type LayerKind = 'partition' | 'span' | 'stripe' | 'mirror' | 'raid5' | 'snapshot'

/**
 * A member's state as its parent layer sees it. `failed`: an I/O error, a disappearance or wrong
 * data marked it; the layer no longer reads from it or writes to it. `rebuilding`: being brought
 * back by a replace or resync; reads avoid it below `rebuilt` bytes' progress only if the layer
 * says so (see MemberStatus.rebuilt).
 */
export type MemberState = 'ok' | 'failed' | 'rebuilding'

export interface MemberStatus {
  readonly index: number
  readonly state: MemberState
  /** Why it failed (the error's message), for status and logs. */
  readonly reason?: string
  /** While rebuilding: bytes of the member (from its start) already made whole. */
  readonly rebuilt?: number
}

export interface LayerStatus {
  readonly kind: LayerKind
  readonly size: number
  /** Serving with less redundancy than configured (a mirror leg or a RAID-5 member failed). */
  readonly degraded: boolean
  /** Not serving writes: more members lost than the layout survives. Reads may still work where data is intact. */
  readonly failed: boolean
  readonly members: readonly MemberStatus[]
}

export type VolumeEventKind =
  | 'member-failed' // a member was marked failed (I/O error, gone, wrong data, or `fail`)
  | 'read-repaired' // a bad range on one member was rewritten from the others
  | 'volume-failed' // more members lost than the layout survives: writes now refuse
  | 'rebuild-started'
  | 'rebuild-progress'
  | 'rebuild-done'
  | 'resync-started' // after an unclean shutdown: dirty regions of the write-intent bitmap
  | 'resync-done'
  | 'scrub-mismatch'
  | 'snapshot-invalidated' // the exception store had no room for a copy: a snapshot was given up so the origin write could proceed

export interface VolumeEvent {
  readonly kind: VolumeEventKind
  readonly layer: LayerKind
  /** Member index within the layer, where the event concerns one. */
  readonly member?: number
  /** Byte offset and length on the member (or on the volume for volume-wide events). */
  readonly offset?: number
  readonly length?: number
  readonly message: string
}

export type VolumeEventSink = (event: VolumeEvent) => void

/** A block device made of other block devices. */
export interface Layer extends BlockDevice {
  readonly kind: LayerKind
  readonly members: readonly BlockDevice[]
  status(): LayerStatus
}

export type VolumeErrorCode =
  | 'VOLUME_LAYOUT' // an impossible layout: too few members, sizes that do not fit, a bad unit
  | 'VOLUME_FAILED' // more members lost than the layout survives; the operation is refused
  | 'VOLUME_MEMBER' // a member index or device this layer does not have, or one in the wrong state
  | 'VOLUME_FOREIGN' // a disk whose member superblock belongs to another volume
  | 'VOLUME_STALE' // a member whose configuration sequence is older than its peers'
  | 'VOLUME_NO_SUPERBLOCK' // a disk carrying no (valid) member superblock
  | 'VOLUME_INCOMPLETE' // assembling without enough members to serve
  | 'VOLUME_SNAPSHOT' // a snapshot that does not exist, exists already, or whose store is full
  | 'VOLUME_BITMAP' // a write-intent bitmap with no valid copy, or whose copies describe another volume

export class VolumeError extends Error {
  readonly code: VolumeErrorCode
  constructor(code: VolumeErrorCode, message: string, options?: ErrorOptions) {
    super(`${code}: ${message}`, options)
    this.name = 'VolumeError'
    this.code = code
  }
}

/** Default stripe unit (seed 004's FtDisk and md's chunk): 64 KiB. */
export const DEFAULT_UNIT = 64 * 1024

/**
 * A write-intent log (md's write-intent bitmap): a redundant layer marks the regions a write will
 * touch as dirty, durably, before writing any member, and clears them lazily once a flush of every
 * member has made those writes durable. After an unclean shutdown only the regions still dirty can
 * hold legs or parity that disagree, so the resync at open touches those and nothing else — and
 * without it a crash mid-update followed by the loss of a member would reconstruct wrong data
 * (the RAID-5 write hole).
 */
export interface IntentLog {
  /**
   * Resolves once every region overlapping [offset, offset + length) of the volume is durably
   * dirty. `generation` numbers the layer's write (write-generations.ts: taken when it starts,
   * never reused, larger for later starts); the log remembers per region the largest it was
   * marked with. The log records it before its first await, so a write that has started has
   * always marked its regions before a settle can look at them.
   */
  mark(offset: number, length: number, generation: number): Promise<void>
  /**
   * Clears every region whose largest mark generation is below `before` (durably or lazily: a
   * stale dirty bit only costs a resync); regions found dirty at open count as generation 0. The
   * layer passes the horizon it read before a flush of every member began (every write numbered
   * below it had completed by then) and calls this once that flush is done: those writes are
   * durable on every member. A region marked by a write at or above the horizon (running when
   * the flush began, or started during it) keeps its bit until a later flush.
   */
  settle(before: number): Promise<void>
  /**
   * settle() for a layer that is closing cleanly: the regions below `before` clear now, however
   * recently they were marked (a log that keeps bits over several settles must not leave them
   * for the next open to resync).
   */
  settleFinal?(before: number): Promise<void>
  /** Regions found dirty at open, on the volume's byte scale, merged and sorted. */
  dirtyAtOpen(): readonly { readonly offset: number; readonly length: number }[]
  /** Bytes of the volume one bit covers. */
  readonly regionSize: number
  close(): Promise<void>
}

/** Options every redundant layer takes. */
export interface RedundantOptions {
  intent?: IntentLog
  onEvent?: VolumeEventSink
}

/** Options of an online rebuild (`replace`) or resync. */
export interface RebuildOptions {
  /** Bytes per second at most (0 or absent: as fast as the members go). */
  rateBytesPerSec?: number
  /** Bytes per step: client I/O gets its turn between steps. */
  stepBytes?: number
  onProgress?: (done: number, total: number) => void
  /**
   * replace only: resume a rebuild a crash or a stop cut short. Bytes of the member below this
   * (a checkpoint recorded by onCheckpoint) are taken as whole on the new device, which serves
   * reads and takes part in a resync there from the moment replace is called (before its first
   * await: a resync at open started after it brings the regions a crash left dirty up to date on
   * it too); the copy starts here.
   */
  resumeFrom?: number
  /**
   * replace only: called once at least `checkpointBytes` (default 8 MiB) more of the member are
   * rebuilt and flushed on the new device, with how many bytes from its start are, so the caller
   * can record it durably (md's recovery_offset). The copy may go on meanwhile (RAID-5 does, one
   * checkpoint at a time), but the rebuild does not end before the last one has.
   */
  onCheckpoint?: (rebuilt: number) => Promise<void>
  checkpointBytes?: number
}

/** Default distance between two rebuild checkpoints. */
export const DEFAULT_CHECKPOINT = 8 * 1024 * 1024
