/* eslint-disable @typescript-eslint/require-await -- async so a range error is a rejection, as from a real device, never a synchronous throw */
import { createHash } from 'node:crypto'
import { BlockDevError, checkRange, closedError, readOnlyError, SECTOR_SIZE } from './block-device.ts'
import type { BlockDevice } from './block-device.ts'

/** Storage granule of the sparse map; independent of any file system's block size. */
const CHUNK = 4096
const ZERO_CHUNK = Buffer.alloc(CHUNK)

/**
 * Digests of chunks that no device writes in place any more (a chunk stops being owned at its
 * first clone and never becomes owned again), so contentKey() hashes each shared chunk once.
 * null: an all-zero chunk, which counts as absent.
 */
const frozenDigests = new WeakMap<Buffer, Buffer | null>()

export interface MemoryDeviceOptions {
  readOnly?: boolean
  sectorSize?: number
}

/**
 * A device in memory, for tests and crash states. Sparse (untouched chunks read as zeros, so a
 * 1 TiB device costs nothing until written) and copy-on-write: `clone()` shares every chunk and
 * either side copies a chunk only when it first writes it, so the crash checker can build
 * thousands of states from one base image cheaply.
 */
export class MemoryDevice implements BlockDevice {
  readonly size: number
  readonly sectorSize: number
  readonly readOnly: boolean
  #chunks: Map<number, Buffer>
  /** Chunks this device may write in place; the others are shared with a clone. */
  #owned: Set<number>
  #closed = false

  constructor(size: number, options: MemoryDeviceOptions = {}) {
    const sectorSize = options.sectorSize ?? SECTOR_SIZE
    if (!Number.isSafeInteger(sectorSize) || sectorSize <= 0 || CHUNK % sectorSize !== 0) {
      throw new BlockDevError('BLOCKDEV_SIZE', `sector size ${sectorSize} must divide ${CHUNK}`)
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % sectorSize !== 0) {
      throw new BlockDevError('BLOCKDEV_SIZE', `device size ${size} is not a positive multiple of ${sectorSize}`)
    }
    this.size = size
    this.sectorSize = sectorSize
    this.readOnly = options.readOnly ?? false
    this.#chunks = new Map()
    this.#owned = new Set()
  }

  /** A device holding a copy of `image` (its length must be a multiple of the sector size). */
  static fromBuffer(image: Uint8Array, options: MemoryDeviceOptions = {}): MemoryDevice {
    const dev = new MemoryDevice(image.length, { ...options, readOnly: false })
    dev.#put(0, image)
    if (options.readOnly === true) return dev.clone({ readOnly: true })
    return dev
  }

  /** A copy-on-write copy: cheap, and writes to either side never show in the other. */
  clone(options: { readOnly?: boolean } = {}): MemoryDevice {
    if (this.#closed) throw closedError('clone')
    const copy = new MemoryDevice(this.size, { sectorSize: this.sectorSize, readOnly: options.readOnly ?? this.readOnly })
    copy.#chunks = new Map(this.#chunks)
    // Both now share every chunk; neither may write one in place until it has copied it.
    this.#owned.clear()
    return copy
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.size, offset, length, 'read')
    const out = Buffer.alloc(length)
    this.#get(offset, out)
    return out
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    checkRange(this.size, offset, target.length, 'read')
    this.#get(offset, target)
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this.size, offset, data.length, 'write')
    if (this.readOnly) throw readOnlyError(offset)
    this.#put(offset, data)
  }

  /** Synchronous write for building crash states; same checks as write(). */
  writeSync(offset: number, data: Uint8Array): void {
    checkRange(this.size, offset, data.length, 'write')
    if (this.readOnly) throw readOnlyError(offset)
    this.#put(offset, data)
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError('flush')
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#chunks = new Map()
    this.#owned.clear()
  }

  /** The whole device as one Buffer (for writing an image file that e2fsck or the kernel can judge). */
  toBuffer(): Buffer {
    if (this.#closed) throw closedError('toBuffer')
    const out = Buffer.alloc(this.size)
    this.#get(0, out)
    return out
  }

  /**
   * A key equal for equal contents (the XOR of a SHA-1 per non-zero chunk and its index), for the
   * crash checker to recognise an image it has judged. Its cost is the chunks this device wrote
   * since its last clone; the shared ones were hashed once, by whichever device saw them first.
   */
  contentKey(): string {
    if (this.#closed) throw closedError('contentKey')
    const key = Buffer.alloc(20)
    for (const [index, chunk] of this.#chunks) {
      const frozen = !this.#owned.has(index)
      let digest = frozen ? frozenDigests.get(chunk) : undefined
      if (digest === undefined) {
        digest = chunk.equals(ZERO_CHUNK) ? null : createHash('sha1').update(`${index}:`).update(chunk).digest()
        if (frozen) frozenDigests.set(chunk, digest)
      }
      if (digest !== null) for (let i = 0; i < 20; i++) key.writeUInt8(key.readUInt8(i) ^ digest.readUInt8(i), i)
    }
    return key.toString('hex')
  }

  #get(offset: number, target: Uint8Array): void {
    if (this.#closed) throw closedError('read')
    let done = 0
    while (done < target.length) {
      const pos = offset + done
      const index = Math.floor(pos / CHUNK)
      const within = pos - index * CHUNK
      const n = Math.min(CHUNK - within, target.length - done)
      const chunk = this.#chunks.get(index)
      if (chunk === undefined) target.fill(0, done, done + n)
      else target.set(chunk.subarray(within, within + n), done)
      done += n
    }
  }

  #put(offset: number, data: Uint8Array): void {
    if (this.#closed) throw closedError('write')
    let done = 0
    while (done < data.length) {
      const pos = offset + done
      const index = Math.floor(pos / CHUNK)
      const within = pos - index * CHUNK
      const n = Math.min(CHUNK - within, data.length - done)
      let chunk = this.#chunks.get(index)
      if (chunk === undefined || !this.#owned.has(index)) {
        const own = Buffer.alloc(CHUNK)
        chunk?.copy(own)
        chunk = own
        this.#chunks.set(index, own)
        this.#owned.add(index)
      }
      chunk.set(data.subarray(done, done + n), within)
      done += n
    }
  }
}
