import { checkRange, closedError, readOnlyError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { VolumeError } from './layer.ts'
import type { TableEntry } from './snapshot-format.ts'
import type { SnapshotStore } from './snapshot-store.ts'

/**
 * A read-only view of one snapshot: each chunk comes from the store where a copy was made, else
 * from the origin, which has not changed there since the snapshot was taken.
 *
 * The race with a concurrent origin write: the origin layer writes a chunk only after the copy
 * serving this snapshot is durable and committed in the store's index, and commits it before the
 * origin write is issued. So a read of the origin whose chunk still has no copy when the read
 * completes saw no origin write; if a copy appeared while it ran, the read is done again from the
 * copy, which holds exactly the old bytes.
 */
export class SnapshotDevice implements BlockDevice {
  readonly readOnly = true
  readonly #origin: BlockDevice
  readonly #store: SnapshotStore
  readonly #entry: TableEntry
  #closed = false

  constructor(origin: BlockDevice, store: SnapshotStore, entry: TableEntry) {
    this.#origin = origin
    this.#store = store
    this.#entry = entry
  }

  get size(): number {
    return this.#origin.size
  }

  get sectorSize(): number {
    return this.#origin.sectorSize
  }

  get name(): string {
    return this.#entry.name
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.size, offset, length, 'read')
    const out = Buffer.alloc(length)
    await this.readInto(offset, out)
    return out
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    checkRange(this.size, offset, target.length, 'read')
    if (this.#closed) throw closedError('read')
    this.#checkLive()
    const cs = this.#store.chunkSize
    const pieces: Promise<void>[] = []
    for (let done = 0; done < target.length;) {
      const pos = offset + done
      const chunk = Math.floor(pos / cs)
      const n = Math.min((chunk + 1) * cs - pos, target.length - done)
      pieces.push(this.#readPiece(chunk, pos, target.subarray(done, done + n)))
      done += n
    }
    await Promise.all(pieces)
    // Deleted or invalidated while we read: its copies may have been freed and reused under us.
    this.#checkLive()
  }

  async #readPiece(chunk: number, pos: number, target: Uint8Array): Promise<void> {
    const within = pos - chunk * this.#store.chunkSize
    const id = this.#entry.id
    const before = this.#store.find(chunk, id)
    if (before === undefined) {
      await this.#origin.readInto(pos, target)
      if (this.#store.find(chunk, id) === undefined) return
    }
    const copy = this.#store.find(chunk, id)
    if (copy === undefined) throw new VolumeError('VOLUME_SNAPSHOT', `snapshot ${this.name} lost its copy of chunk ${chunk}`)
    await this.#store.device.readInto(this.#store.chunkOffset(copy.storeChunk) + within, target)
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- a rejection, as every device gives
  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this.size, offset, data.length, 'write')
    throw readOnlyError(offset)
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError('flush')
    // Nothing of a snapshot is ever written through it.
    await Promise.resolve()
  }

  async close(): Promise<void> {
    this.#closed = true
    await Promise.resolve()
  }

  #checkLive(): void {
    const now = this.#store.entryById(this.#entry.id)
    if (now?.seq !== this.#entry.seq || now.state !== 'live') {
      throw new VolumeError('VOLUME_SNAPSHOT', `snapshot ${this.name} is ${now?.seq === this.#entry.seq ? now.state : 'deleted'}: its content is gone`)
    }
  }
}
