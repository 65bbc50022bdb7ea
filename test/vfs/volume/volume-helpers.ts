import { randomInt } from 'node:crypto'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { IntentLog } from '../../../vfs/volume/layer.ts'

/** The shared seeded generator (mulberry32), under the name this file's tests use. */
export { prng as rng } from '../../helpers/prng.ts'

/** The seed from TSNFS_VOLUME_SEED, or a fresh one; the caller prints it. */
export function seedOf(): number {
  return Number(process.env.TSNFS_VOLUME_SEED ?? randomInt(1, 0x7fff_ffff))
}

export function below(r: () => number, n: number): number {
  return Math.floor(r() * n)
}

/** Bytes i of which is (i * 7 + tag) mod 251: no period of a power of two, so a misplaced piece shows. */
export function pattern(length: number, tag: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (i * 7 + tag) % 251
  return b
}

export function randomBytes(r: () => number, length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = below(r, 256)
  return b
}

/** A device that counts the writes and bytes it passes on (to prove what a copy touched). */
export class CountingDevice extends PassThroughDevice {
  writes = 0
  bytesWritten = 0
  flushes = 0
  reads = 0
  readonly writeLog: { offset: number; length: number }[] = []
  override read(offset: number, length: number): Promise<Buffer> {
    this.reads++
    return this.inner.read(offset, length)
  }
  override readInto(offset: number, target: Uint8Array): Promise<void> {
    this.reads++
    return this.inner.readInto(offset, target)
  }
  override write(offset: number, data: Uint8Array): Promise<void> {
    this.writes++
    this.bytesWritten += data.length
    this.writeLog.push({ offset, length: data.length })
    return this.inner.write(offset, data)
  }
  override flush(): Promise<void> {
    this.flushes++
    return this.inner.flush()
  }
}

/**
 * A device whose reads take their bytes at once but resolve `delayMs` later, as a slow disk's
 * DMA does: the window in which a copy holds old bytes that a client write has since replaced.
 */
/**
 * Fails every write once a budget shared by several devices is spent (a disk pulled, or a crash as
 * far as the disks know): the reshape tests cut a copy short with it.
 */
export class WriteBudgetDevice extends PassThroughDevice {
  readonly budget: { left: number }
  constructor(inner: BlockDevice, budget: { left: number }) {
    super(inner)
    this.budget = budget
  }
  override write(offset: number, data: Uint8Array): Promise<void> {
    if (this.budget.left-- <= 0) return Promise.reject(new Error('EIO (the test)'))
    return this.inner.write(offset, data)
  }
}

export class LaggyReadDevice extends CountingDevice {
  delayMs: number
  constructor(inner: BlockDevice, delayMs: number) {
    super(inner)
    this.delayMs = delayMs
  }
  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    await super.readInto(offset, target)
    await new Promise((resolve) => setTimeout(resolve, this.delayMs))
  }
}

/**
 * A write-intent log in memory, as small as the interface allows: one bit per region with the
 * largest generation that marked it; `settle(before)` clears the regions last marked below
 * `before`. `dirty` is what a reopen would find.
 */
export class TestIntentLog implements IntentLog {
  readonly regionSize: number
  readonly dirty = new Set<number>()
  readonly #atOpen: { offset: number; length: number }[]
  marks = 0
  settles = 0
  closed = false
  constructor(regionSize: number, atOpen: { offset: number; length: number }[] = []) {
    this.regionSize = regionSize
    this.#atOpen = atOpen
  }
  readonly #lastGen = new Map<number, number>()
  async mark(offset: number, length: number, generation: number): Promise<void> {
    this.marks++
    for (let r = Math.floor(offset / this.regionSize); r * this.regionSize < offset + length; r++) {
      this.dirty.add(r)
      this.#lastGen.set(r, Math.max(generation, this.#lastGen.get(r) ?? 0))
    }
  }
  async settle(before: number): Promise<void> {
    this.settles++
    for (const r of this.dirty) if ((this.#lastGen.get(r) ?? 0) < before) this.dirty.delete(r)
  }
  dirtyAtOpen(): readonly { offset: number; length: number }[] {
    return this.#atOpen
  }
  async close(): Promise<void> {
    this.closed = true
  }
}

/** Every byte of `dev`, in 1 MiB reads. */
export async function contents(dev: BlockDevice): Promise<Buffer> {
  const out = Buffer.alloc(dev.size)
  for (let pos = 0; pos < dev.size; pos += 1 << 20) await dev.readInto(pos, out.subarray(pos, Math.min(dev.size, pos + (1 << 20))))
  return out
}

export function mem(size: number, sectorSize = 512): MemoryDevice {
  return new MemoryDevice(size, { sectorSize })
}

/** A random sector-aligned or unaligned range inside `size` of at most `max` bytes. */
export function randomRange(r: () => number, size: number, max: number, align = 1): { offset: number; length: number } {
  const length = Math.max(align, Math.floor((1 + below(r, max)) / align) * align)
  const offset = Math.floor(below(r, size - length + 1) / align) * align
  return { offset, length }
}
