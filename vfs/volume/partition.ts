import { checkRange, closedError, readOnlyError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { Layer, LayerKind, LayerStatus } from './layer.ts'
import { VolumeError } from './layer.ts'
import { checkMultiple } from './layer-checks.ts'

/**
 * A window [offset, offset + size) of one device, seen as a device of its own (a partition, or
 * the data area after a member superblock). Both bounds are whole sectors of the inner device, so
 * a sector of the partition is a sector of the inner device and torn writes tear the same way.
 * It owns `inner`: closing the partition closes it (layer-checks.ts). Partitions of one disk
 * share it, so they are closed together (a device's close is idempotent): closing one closes the
 * disk under the others.
 */
export class PartitionDevice implements Layer {
  readonly kind: LayerKind = 'partition'
  readonly size: number
  readonly sectorSize: number
  readonly offset: number
  readonly members: readonly BlockDevice[]
  readonly #inner: BlockDevice
  #closed = false

  constructor(inner: BlockDevice, offset: number, size: number) {
    const sector = inner.sectorSize
    if (offset !== 0) checkMultiple(offset, sector, 'partition offset')
    checkMultiple(size, sector, 'partition size')
    if (offset + size > inner.size) {
      throw new VolumeError('VOLUME_LAYOUT', `partition of ${size} bytes at ${offset} does not fit a device of ${inner.size} bytes`)
    }
    this.#inner = inner
    this.members = [inner]
    this.offset = offset
    this.size = size
    this.sectorSize = sector
  }

  get readOnly(): boolean {
    return this.#inner.readOnly
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.#check('read', offset, length)
    return this.#inner.read(this.offset + offset, length)
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.#check('read', offset, target.length)
    return this.#inner.readInto(this.offset + offset, target)
  }

  async readv(offset: number, targets: readonly Uint8Array[]): Promise<void> {
    this.#check('read', offset, targets.reduce((sum, c) => sum + c.length, 0))
    const inner = this.#inner
    if (inner.readv !== undefined) return inner.readv(this.offset + offset, targets)
    let at = this.offset + offset
    for (const t of targets) {
      await inner.readInto(at, t)
      at += t.length
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write', offset, data.length)
    if (this.readOnly) throw readOnlyError(offset)
    return this.#inner.write(this.offset + offset, data)
  }

  async writev(offset: number, chunks: readonly Uint8Array[]): Promise<void> {
    this.#check('write', offset, chunks.reduce((sum, c) => sum + c.length, 0))
    if (this.readOnly) throw readOnlyError(offset)
    const inner = this.#inner
    return inner.writev === undefined ? inner.write(this.offset + offset, Buffer.concat(chunks)) : inner.writev(this.offset + offset, chunks)
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError('flush')
    return this.#inner.flush()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#inner.close()
  }

  status(): LayerStatus {
    return { kind: this.kind, size: this.size, degraded: false, failed: false, members: [{ index: 0, state: 'ok' }] }
  }

  #check(what: string, offset: number, length: number): void {
    if (this.#closed) throw closedError(what)
    checkRange(this.size, offset, length, what)
  }
}
