import { checkRange, closedError, readOnlyError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { VolumeError } from './layer.ts'
import type { Layer, LayerStatus, VolumeEventSink } from './layer.ts'
import { SnapshotDevice } from './snapshot-device.ts'
import type { SnapshotState, TableEntry } from './snapshot-format.ts'
import type { SnapshotStore } from './snapshot-store.ts'

export interface OriginOptions {
  onEvent?: VolumeEventSink
  /**
   * When a write needs a copy and the store is full. 'invalidate' (the default): give up the
   * oldest live snapshot, free its copies and let the write proceed, so the origin (the live file
   * system) never fails because of a snapshot. 'reject': fail the write with VOLUME_SNAPSHOT.
   * dm-snapshot invalidates too; it gives up the snapshot whose store filled, and here one store
   * serves every snapshot, so the oldest goes first.
   */
  whenFull?: 'invalidate' | 'reject'
  /** Clock for creation times (tests pin it). */
  now?: () => number
}

export interface SnapshotInfo {
  readonly id: number
  readonly name: string
  readonly created: number
  /** Creation order over the store's life, never reused (a table id is, once its snapshot is gone). */
  readonly seq: number
  readonly state: SnapshotState
}

const info = (e: TableEntry): SnapshotInfo => ({ id: e.id, name: e.name, created: e.created, seq: e.seq, state: e.state })

/**
 * The origin of copy-on-write snapshots (dm-snapshot's snapshot-origin target): reads pass
 * through; a write to a chunk that some live snapshot has not copied yet first copies the old
 * chunk into the store and makes the copy and its map slot durable, and only then writes the
 * origin. That order is the whole of the crash safety: whatever a power cut leaves, every origin
 * chunk that differs from a snapshot's content has a durable copy the snapshot reads instead.
 */
export class OriginDevice implements Layer {
  readonly kind = 'snapshot' as const
  readonly origin: BlockDevice
  readonly store: SnapshotStore
  readonly members: readonly BlockDevice[]
  readonly #onEvent: VolumeEventSink | undefined
  readonly #whenFull: 'invalidate' | 'reject'
  readonly #now: () => number
  /** One copy per origin chunk in flight; concurrent writers of the chunk wait for it. */
  readonly #copying = new Map<number, Promise<void>>()
  #writers = 0
  #drained: (() => void)[] = []
  /** Set while a snapshot is being created: new writes wait, so the snapshot is one point in time. */
  #gate: Promise<void> | undefined
  #background: Promise<void> = Promise.resolve()
  #backgroundError: Error | undefined
  #room: Promise<void> = Promise.resolve()
  /**
   * The first I/O error of the store on a copy. From then on a write that needs a copy is refused
   * (VOLUME_FAILED) rather than let through: the store can no longer record that the old bytes are
   * kept, and a snapshot must never silently read new ones. Writes to chunks every live snapshot
   * has copied already, reads, and snapshot reads go on.
   */
  #storeError: Error | undefined
  #closed = false

  constructor(origin: BlockDevice, store: SnapshotStore, options: OriginOptions = {}) {
    const chunks = Math.ceil(origin.size / store.chunkSize)
    const beyond = store.originChunks().find((c) => c >= chunks)
    if (beyond !== undefined) {
      throw new VolumeError('VOLUME_LAYOUT', `the store holds origin chunk ${beyond}, past the end of a ${origin.size}-byte origin`)
    }
    this.origin = origin
    this.store = store
    this.members = [origin, store.device]
    this.#onEvent = options.onEvent
    this.#whenFull = options.whenFull ?? 'invalidate'
    this.#now = options.now ?? Date.now
    // A delete or an invalidation a crash cut short finishes now, in the background.
    for (const e of store.entries()) {
      if (e.state === 'deleting' || (e.state === 'invalid' && store.holdsCopies(e.id))) this.#reapLater(e.id)
    }
  }

  get size(): number {
    return this.origin.size
  }

  get sectorSize(): number {
    return this.origin.sectorSize
  }

  get readOnly(): boolean {
    return this.origin.readOnly
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.origin.read(offset, length)
  }

  readInto(offset: number, target: Uint8Array): Promise<void> {
    return this.origin.readInto(offset, target)
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this.size, offset, data.length, 'write')
    if (this.#closed) throw closedError('write')
    if (this.readOnly) throw readOnlyError(offset)
    while (this.#gate !== undefined) await this.#gate
    this.#writers++
    try {
      const cs = this.store.chunkSize
      const first = Math.floor(offset / cs)
      const last = data.length === 0 ? first - 1 : Math.floor((offset + data.length - 1) / cs)
      const copies: Promise<void>[] = []
      for (let c = first; c <= last; c++) copies.push(this.#preserve(c))
      await Promise.all(copies)
      await this.origin.write(offset, data)
    } finally {
      if (--this.#writers === 0) for (const wake of this.#drained.splice(0)) wake()
    }
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError('flush')
    await Promise.all([this.origin.flush(), this.store.device.flush()])
  }

  async close(): Promise<void> {
    if (this.#closed) return
    await this.whenIdle().catch(() => undefined)
    this.#closed = true
    await Promise.all([this.origin.close(), this.store.device.close()])
  }

  status(): LayerStatus {
    const store = this.#storeError === undefined ? { index: 1, state: 'ok' as const } : { index: 1, state: 'failed' as const, reason: this.#storeError.message }
    return { kind: 'snapshot', size: this.size, degraded: this.#storeError !== undefined, failed: false, members: [{ index: 0, state: 'ok' }, store] }
  }

  /**
   * O(1): one table slot written and flushed, no data copied. Writes issued before it are waited
   * for and flushed on the origin first, so the snapshot's content is durable as it is seen; the
   * engine above commits its journal and quiesces before calling, so that content is a clean
   * file system.
   */
  async createSnapshot(name: string): Promise<SnapshotInfo> {
    if (this.#closed) throw closedError('createSnapshot')
    while (this.#gate !== undefined) await this.#gate
    let open = (): void => undefined
    this.#gate = new Promise((resolve) => (open = resolve))
    try {
      if (this.#writers > 0) await new Promise<void>((resolve) => this.#drained.push(resolve))
      await this.origin.flush()
      return info(await this.store.createEntry(name, this.#now()))
    } finally {
      this.#gate = undefined
      open()
    }
  }

  listSnapshots(): SnapshotInfo[] {
    return this.store.entries().sort((a, b) => a.seq - b.seq).map(info)
  }

  /** Marks it deleting, durably, at once; its copies are freed in the background (see whenIdle). */
  async deleteSnapshot(name: string): Promise<void> {
    const e = this.store.entry(name)
    if (e === undefined) throw new VolumeError('VOLUME_SNAPSHOT', `no snapshot ${name}`)
    if (e.state === 'deleting') return
    await this.store.setState(e.id, 'deleting')
    this.#reapLater(e.id)
  }

  /** A read-only device holding the snapshot's content. */
  snapshot(name: string): SnapshotDevice {
    const e = this.store.entry(name)
    if (e === undefined) throw new VolumeError('VOLUME_SNAPSHOT', `no snapshot ${name}`)
    if (e.state !== 'live') throw new VolumeError('VOLUME_SNAPSHOT', `snapshot ${name} is ${e.state}`)
    return new SnapshotDevice(this.origin, this.store, e)
  }

  /** Resolves when background deletes are done; rejects with the first error one met. */
  async whenIdle(): Promise<void> {
    await this.#background
    const err = this.#backgroundError
    this.#backgroundError = undefined
    if (err !== undefined) throw err
  }

  #reapLater(id: number): void {
    this.#background = this.#background.then(async () => {
      try {
        await this.store.dropCopies(id)
        if (this.store.entryById(id)?.state === 'deleting') await this.store.freeEntry(id)
      } catch (err) {
        this.#backgroundError ??= err instanceof Error ? err : new Error(String(err))
      }
    })
  }

  /** Resolves once no live snapshot lacks its own copy of origin chunk `c`. */
  async #preserve(c: number): Promise<void> {
    for (;;) {
      const inFlight = this.#copying.get(c)
      if (inFlight !== undefined) {
        await inFlight
        continue
      }
      const need = this.store.liveMask() & ~this.store.covered(c)
      if (need === 0n) return
      if (this.#storeError !== undefined) {
        throw new VolumeError('VOLUME_FAILED', `snapshot store failed (${this.#storeError.message}): a write to origin chunk ${c}, which a snapshot still needs, is refused`)
      }
      const run = this.#copy(c, need).finally(() => this.#copying.delete(c))
      this.#copying.set(c, run)
      await run
    }
  }

  async #copy(c: number, need: bigint): Promise<void> {
    let chunk = this.store.allocChunk()
    while (chunk === undefined) {
      await this.#makeRoom(need)
      need &= this.store.liveMask()
      if (need === 0n) return
      chunk = this.store.allocChunk()
    }
    const cs = this.store.chunkSize
    let old: Buffer
    try {
      old = await this.origin.read(c * cs, Math.min(cs, this.size - c * cs))
    } catch (err) {
      this.store.releaseChunk(chunk)
      throw err
    }
    try {
      await this.store.device.write(this.store.chunkOffset(chunk), old)
      // The data durable before the map slot that points at it.
      await this.store.device.flush()
    } catch (err) {
      // Its map slot was never written: the chunk is free on disk.
      this.store.releaseChunk(chunk)
      throw this.#storeFailed(err)
    }
    try {
      await this.store.commitException(chunk, c, need)
    } catch (err) {
      // Whether the slot reached the disk is unknown: the chunk stays out of use until a reopen reads it.
      throw this.#storeFailed(err)
    }
  }

  #storeFailed(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err))
    if (this.#storeError === undefined) {
      this.#storeError = e
      this.#onEvent?.({ kind: 'member-failed', layer: 'snapshot', member: 1, message: `snapshot store failed: ${e.message}` })
    }
    return e
  }

  /** One at a time: waits for deletes in flight to free chunks, else gives up the oldest live snapshot. */
  #makeRoom(need: bigint): Promise<void> {
    const run = this.#room.then(async () => {
      await this.#background
      const { used, chunks } = this.store.usage()
      if (used < chunks) return
      const victim = this.store.oldestLive()
      if (victim === undefined) return
      if (this.#whenFull === 'reject') {
        const names = this.listSnapshots().filter((s) => s.state === 'live' && (need & (1n << BigInt(s.id))) !== 0n).map((s) => s.name)
        throw new VolumeError('VOLUME_SNAPSHOT', `snapshot store full (${chunks} chunks): no room to keep snapshot ${names.join(', ')}`)
      }
      await this.store.setState(victim.id, 'invalid')
      const freed = await this.store.dropCopies(victim.id)
      this.#onEvent?.({
        kind: 'snapshot-invalidated', layer: 'snapshot',
        message: `snapshot store full (${chunks} chunks): snapshot ${victim.name} invalidated, ${freed} chunks freed`,
      })
    })
    this.#room = run.catch(() => undefined)
    return run
  }
}
