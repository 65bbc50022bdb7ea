/* eslint-disable @typescript-eslint/require-await -- async so every refusal is a rejection, as from a real device */
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { SECTOR_SIZE } from '../engine/blockdev/block-device.ts'

/**
 * Stands in for a member that is absent at assembly (not among the disks given, or marked failed
 * by the configuration): every read, write and flush fails as a disk that disappeared does
 * (ENXIO, like FaultDevice's `gone`), so a mirror or RAID-5 marks it failed at its first touch
 * and serves degraded from the others. Its size is the member's, so the layer's geometry is the
 * one the configuration describes.
 */
export class MissingDevice implements BlockDevice {
  readonly size: number
  readonly sectorSize = SECTOR_SIZE
  readonly readOnly = false
  /** Why the member is missing, carried in every error. */
  readonly reason: string

  constructor(size: number, reason: string) {
    this.size = size
    this.reason = reason
  }

  async read(offset: number, length: number): Promise<Buffer> {
    throw this.#error('read', offset, length)
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    throw this.#error('read', offset, target.length)
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    throw this.#error('write', offset, data.length)
  }

  async flush(): Promise<void> {
    throw this.#error('flush', 0, 0)
  }

  async close(): Promise<void> {
    // Nothing is open.
  }

  #error(op: string, offset: number, length: number): NodeJS.ErrnoException {
    const err: NodeJS.ErrnoException = new Error(`ENXIO: ${op} of ${length} bytes at ${offset}: member missing (${this.reason})`)
    err.code = 'ENXIO'
    err.errno = -6
    return err
  }
}
