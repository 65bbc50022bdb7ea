/*
 * The engine's shared state and the machinery every operation runs through: the lock, a change's
 * transaction handle and commit (change: group commit, the WRITE data phase outside the lock),
 * freezing, the error policy (errors=remount-ro), and finding a live inode from a handle. The
 * operations themselves (lookup-ops.ts, file-ops.ts, create-ops.ts, name-ops.ts) are functions
 * over an EngineCore; EngineVfs (engine-vfs.ts) is the one public class and holds one of these.
 */
import { nowTimespec } from '../../clock.ts'
import { VfsError } from '../../errors.ts'
import type { Attr, FileRef, FileType, Timespec, VfsCache } from '../../types.ts'
import type { BlockDevice } from '../blockdev/block-device.ts'
import { S_IFMT } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import type { Allocator } from '../alloc/allocator.ts'
import type { MetaTxn, TxnManager } from '../txn/txn.ts'
import { attrOf, fileTypeOf, modeBitsOf } from './attr.ts'
import { toVfsError } from './errors.ts'
import { DataFlights } from './data-flights.ts'
import type { DataFlight } from './data-flights.ts'
import type { InodeSlot } from '../inode/inode-table.ts'
import type { DirIndex, FileMap, InodeStore } from './parts.ts'
import { RwLock } from './rw-lock.ts'
import { DEFAULT_READ_POOL_BYTES, READ_BUFFER_SIZE, ReadBuffers } from '../../memory/read-buffers.ts'

export const ROOT_INO = 2
export const PATH_MAX = 4096

export interface EngineParts {
  dev: BlockDevice
  txm: TxnManager
  alloc: Allocator
  inodes: InodeStore
  files: FileMap
  dirs: DirIndex
  blockSize: number
  /** The caches the server shows in its metrics and trims when idle (fs/caches.ts). */
  caches?: readonly VfsCache[]
  /** s_first_ino: numbers below it (but root) are the file system's own (journal, resize...). */
  firstIno: number
  inodesCount: number
  /** Largest file the block map can address (ext4: 2^32 blocks). */
  maxFileSize: bigint
  /** FSSTAT's counters, read from the live superblock. */
  statfs(): Promise<{ blocks: number; freeBlocks: number; reservedBlocks: number; inodes: number; freeInodes: number }>
  /** Commit, checkpoint and close the device. */
  close(): Promise<void>
}

export interface EngineVfsOptions {
  readOnly?: boolean
  /** What an internal error does: 'remount-ro' (default) stops every later change. */
  errors?: 'remount-ro' | 'continue'
  log?: (msg: string) => void
  now?: () => Timespec
  /** Where READ data goes: buffers lent to the server and given back once the reply is sent. */
  readBuffers?: ReadBuffers
}


/** How a change hands its file-data writes to run outside the lock (see change). */
export type Later = (ino: number, span: { first: number; last: number }, io: () => Promise<void>) => void

export class EngineCore {
  readonly p: EngineParts
  readonly #lock = new RwLock()
  /** WRITEs whose data is on its way to the device, the lock released (data-flights.ts). */
  readonly flights = new DataFlights()
  readonly now: () => Timespec
  readonly #errors: 'remount-ro' | 'continue'
  readonly #log: (msg: string) => void
  readonly bufs: ReadBuffers
  #readOnly: boolean
  /** The last transaction that changed each file's data or size, for COMMIT (bounded: see noteWrite). */
  readonly #lastTid = new Map<number, number>()
  /** The newest transaction a forgotten entry of #lastTid can have had. */
  #forgottenTid = 0
  /** While frozen: changes wait on it before taking the lock, so reads go on meanwhile. */
  #frozen: Promise<void> | undefined
  #thawed: () => void = () => {}
  /** The largest file id a handle can carry (inodesCount), made once rather than per call. */
  readonly #maxId: bigint

  constructor(parts: EngineParts, opts: EngineVfsOptions) {
    this.p = parts
    this.#maxId = BigInt(parts.inodesCount)
    this.#readOnly = opts.readOnly ?? false
    this.#errors = opts.errors ?? 'remount-ro'
    this.#log = opts.log ?? (() => {})
    this.bufs = opts.readBuffers ?? new ReadBuffers(READ_BUFFER_SIZE, { maxBytes: DEFAULT_READ_POOL_BYTES })
    this.now = opts.now ?? nowTimespec
  }

  get readOnly(): boolean {
    return this.#readOnly
  }

  /**
   * May a read run now, in this one synchronous turn, without taking the lock? Only when no change
   * holds it or waits for it: then taking it would succeed at once, and a read that ends before
   * its first await lets no change in meanwhile, so it sees exactly what a locked read would.
   */
  get readableNow(): boolean {
    return this.#lock.idleForReaders
  }

  async read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await this.#lock.read(fn)
    } catch (err) {
      throw this.fail(err)
    }
  }

  /**
   * One change: a handle under the exclusive lock, then (unless `durable` is false) its commit.
   * `later` (a WRITE's, as the last thing it does) hands over the file-data device writes: they run
   * after the lock is released and before the handle ends.
   */
  async change<T>(fn: (h: MetaTxn, later: Later) => Promise<T>, durable = true): Promise<T> {
    if (this.#readOnly) throw new VfsError('EROFS')
    while (this.#frozen !== undefined) await this.#frozen
    // An error met while we waited may have made the engine read-only.
    if (this.readOnly) throw new VfsError('EROFS')
    let tid = 0
    let result: T
    // In an object: TypeScript does not see the closure below assign it.
    const pending: { h?: MetaTxn; data?: { flight: DataFlight; io: () => Promise<void> } } = {}
    const later: Later = (ino, span, io) => {
      pending.data = { flight: this.flights.start(ino, span.first, span.last), io }
    }
    try {
      let queued = 0
      result = await this.#lock.write(async () => {
        const h = await this.p.txm.begin()
        tid = h.tid
        pending.h = h
        try {
          return await fn(h, later)
        } catch (err) {
          if (pending.data !== undefined) this.flights.end(pending.data.flight)
          delete pending.data
          // Damage or a failing device met half-way: this operation's changes are in the running
          // transaction, possibly half made. As ext4 with errors=remount-ro, abort the journal so
          // they never commit (the operations sharing the transaction fail too: none was answered).
          if (!(err instanceof VfsError)) {
            if (this.#errors === 'remount-ro') this.p.txm.abort(err)
            // Blocks may hold half of this change: nothing remembered of the directories holds.
            this.p.dirs.forget?.()
          }
          throw err
        } finally {
          if (pending.data === undefined) this.p.txm.end(h)
          queued = this.#lock.writersWaiting
        }
      })
      if (pending.data !== undefined && pending.h !== undefined) await this.#dataPhase(pending.h, pending.data)
      // Changes queued behind this one join its transaction: the last of the burst asks for the
      // commit, so one commit (two flushes) carries them all rather than the first one alone.
      if (durable) await this.p.txm.waitDurable(tid, { defer: queued > 0 })
    } catch (err) {
      throw this.fail(err)
    }
    return result
  }

  /**
   * A WRITE's data blocks, outside the lock. The handle ends only after them, so no commit can
   * make the extents pointing at them durable first; a failed device write aborts the journal
   * before the handle ends, so those extents never commit at all (errors=remount-ro).
   */
  async #dataPhase(h: MetaTxn, data: { flight: DataFlight; io: () => Promise<void> }): Promise<void> {
    try {
      await data.io()
    } catch (err) {
      if (!(err instanceof VfsError) && this.#errors === 'remount-ro') this.p.txm.abort(err)
      throw err
    } finally {
      this.flights.end(data.flight)
      this.p.txm.end(h)
    }
  }

  /** WRITEs in their data phase now, and the most at once so far (for counting tests). */
  get dataWritesInFlight(): { now: number; max: number } {
    return { now: this.flights.size, max: this.flights.maxInFlight }
  }

  /** VfsErrors pass; anything else is damage or a failing device: EIO, and read-only if so configured. */
  fail(err: unknown): Error {
    if (err instanceof VfsError) return err
    const mapped = toVfsError(err)
    if (mapped.code === 'EIO' && this.#errors === 'remount-ro' && !this.#readOnly) {
      this.#readOnly = true
      this.#log(`engine: ${(err as Error).message}; the export is now read-only (errors=remount-ro)`)
    }
    return mapped
  }

  async close(): Promise<void> {
    // Closed while frozen: the changes waiting go on first (and close commits them), not hang.
    if (this.#frozen !== undefined) await this.thaw().catch(() => undefined)
    await this.#lock.write(() => this.p.close())
  }

  // ---- freezing (ext4_freeze / FIFREEZE) ----

  /**
   * Quiesce for a block-level copy (a snapshot): new changes wait (reads go on); the changes
   * running finish; the journal commits and checkpoints; needs_recovery is cleared and flushed.
   * When this resolves the device holds a clean file system with every change answered so far,
   * UNSTABLE writes included (their data reached the device before their transaction ended, and
   * the commit flushed it: as ext4's freeze syncs dirty data). Reads go on while frozen; thaw()
   * lets the waiting changes go. A read-only engine writes nothing: freezing it only holds changes.
   */
  async freeze(): Promise<void> {
    if (this.#frozen !== undefined) throw new VfsError('EBUSY')
    this.#frozen = new Promise<void>((resolve) => (this.#thawed = resolve))
    try {
      // A barrier: every change that passed the gate before it shut holds or waits for the lock
      // ahead of this, so once we hold it, every running change has ended its handle or is in its
      // data phase (a WRITE's data blocks), whose open handle the commit below waits for.
      await this.#lock.write(() => Promise.resolve())
      await this.p.txm.freeze?.()
    } catch (err) {
      this.#open()
      throw this.fail(err)
    }
  }

  /** Undoes freeze: needs_recovery set again (durably), then the waiting changes go. */
  async thaw(): Promise<void> {
    if (this.#frozen === undefined) throw new VfsError('EINVAL')
    try {
      await this.p.txm.thaw?.()
    } catch (err) {
      throw this.fail(err)
    } finally {
      this.#open()
    }
  }

  get frozen(): boolean {
    return this.#frozen !== undefined
  }

  #open(): void {
    this.#frozen = undefined
    this.#thawed()
  }

  // ---- finding inodes ----

  /**
   * Inode ino if it is live. view: the shared cached object, for readers that only look (never
   * change it); otherwise a copy the caller may change and write back.
   */
  async inodeOf(ino: number, view = false): Promise<Inode> {
    if (view) return (await this.slotOf(ino)).inode
    this.#checkIno(ino)
    const inode = await this.p.inodes.read(ino)
    if (inode.linksCount === 0 || inode.mode === 0) throw new VfsError('ESTALE')
    return inode
  }

  /** The cached slot of live inode ino (its view, attributes and handle: viewAttr, viewRef), read if not cached. */
  async slotOf(ino: number): Promise<InodeSlot> {
    this.#checkIno(ino)
    const slot = this.p.inodes.cachedSlot(ino) ?? await this.p.inodes.slot(ino)
    if (!slot.live) throw new VfsError('ESTALE')
    return slot
  }

  /** The inode number a handle names, ESTALE when it cannot name one (inodeOf checks the rest). */
  #inoOf(f: FileRef): number {
    if (f.id > this.#maxId || f.id < 1n) throw new VfsError('ESTALE')
    return Number(f.id)
  }

  #checkIno(ino: number): void {
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > this.p.inodesCount || (ino < this.p.firstIno && ino !== ROOT_INO)) {
      throw new VfsError('ESTALE')
    }
  }

  /** A live inode's cached slot, without a promise; undefined when not cached or not live (ask slotOf). */
  liveSlot(ino: number): InodeSlot | undefined {
    const slot = this.p.inodes.cachedSlot(ino)
    return slot === undefined || !slot.live ? undefined : slot
  }

  /**
   * The cached live slot of f's inode when its generation matches, at once; undefined for
   * anything else (not cached, stale, bad): the caller then asks getSlot, which says why.
   */
  cachedView(f: FileRef): { ino: number; slot: InodeSlot } | undefined {
    if (f.id > this.#maxId || f.id < 1n) return undefined
    const ino = Number(f.id)
    if (ino < this.p.firstIno && ino !== ROOT_INO) return undefined
    const slot = this.liveSlot(ino)
    return slot === undefined || slot.inode.generation !== f.gen ? undefined : { ino, slot }
  }

  /** f's live inode's slot (for looking only): ESTALE when gone or of another generation. */
  async getSlot(f: FileRef): Promise<{ ino: number; slot: InodeSlot }> {
    const ino = this.#inoOf(f)
    const slot = await this.slotOf(ino)
    if (slot.inode.generation !== f.gen) throw new VfsError('ESTALE')
    return { ino, slot }
  }

  async get(f: FileRef, view = false): Promise<{ ino: number; inode: Inode }> {
    const ino = this.#inoOf(f)
    const inode = await this.inodeOf(ino, view)
    if (inode.generation !== f.gen) throw new VfsError('ESTALE')
    return { ino, inode }
  }

  async getType(f: FileRef, type: FileType, view = false): Promise<{ ino: number; inode: Inode }> {
    const got = await this.get(f, view)
    const actual = fileTypeOf(got.inode.mode)
    // As the other backends: READ, WRITE and COMMIT of anything but a regular file are EINVAL.
    if (actual !== type) throw new VfsError('EINVAL', `not a ${type}`)
    return got
  }

  async getDir(f: FileRef, view = false): Promise<{ ino: number; inode: Inode }> {
    const got = await this.get(f, view)
    if ((got.inode.mode & S_IFMT) !== modeBitsOf('dir')) throw new VfsError('ENOTDIR')
    return got
  }

  /** Remember the file's last transaction; past 65,536 files, forget them all but their newest tid. */
  noteWrite(ino: number, tid: number): void {
    this.#lastTid.delete(ino)
    this.#lastTid.set(ino, tid)
    if (this.#lastTid.size > 65536) {
      for (const t of this.#lastTid.values()) this.#forgottenTid = Math.max(this.#forgottenTid, t)
      this.#lastTid.clear()
    }
  }

  attr(ino: number, inode: Inode): Attr {
    return attrOf(ino, inode, this.p.blockSize)
  }

  /**
   * The attributes of a cached inode (its slot), made once per slot: a cached inode is never
   * changed (a change caches a new slot), so its attributes hold as long as the slot does, and
   * GETATTR, LOOKUP and every READDIRPLUS entry of an unchanged file share one Attr. Only for
   * slots: a change's own copy is changed between its before and after attributes.
   */
  viewAttr(ino: number, slot: InodeSlot): Attr {
    let attr = slot.attr
    if (attr === undefined) {
      attr = attrOf(ino, slot.inode, this.p.blockSize)
      slot.attr = attr
    }
    return attr
  }

  /**
   * The handle of a cached inode (its slot), made once per slot as viewAttr's attributes are (the
   * same reasons), with the attributes' own fileid: one BigInt for both, one object fewer to read.
   */
  viewRef(ino: number, slot: InodeSlot): FileRef {
    let ref = slot.ref
    if (ref === undefined) {
      ref = { id: this.viewAttr(ino, slot).fileid, gen: slot.inode.generation }
      slot.ref = ref
    }
    return ref
  }

  ref(ino: number, inode: Inode): FileRef {
    return { id: BigInt(ino), gen: inode.generation }
  }

  /** The last transaction that changed the file's data or size (or the newest a forgotten entry can have had). */
  lastWriteTid(ino: number): number | undefined {
    return this.#lastTid.get(ino) ?? (this.#forgottenTid > 0 ? this.#forgottenTid : undefined)
  }

  /** The file's inode was freed: its number may be reused by a file with no writes yet. */
  forgetWrites(ino: number): void {
    this.#lastTid.delete(ino)
  }
}
