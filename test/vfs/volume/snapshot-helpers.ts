import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { VolumeEvent } from '../../../vfs/volume/layer.ts'
import { OriginDevice } from '../../../vfs/volume/snapshot.ts'
import type { OriginOptions } from '../../../vfs/volume/snapshot.ts'
import { SnapshotStore } from '../../../vfs/volume/snapshot-store.ts'
import { prng } from '../../helpers/prng.ts'

/** Integers in [0, n) from the shared seeded generator: the same seed gives the same workload. */
export function rng(seed: number): (n: number) => number {
  const next = prng(seed)
  return (n: number): number => Math.floor(next() * n)
}

/** The seed from `name` in the environment, else a fresh one; the test prints it either way. */
export function seedFrom(name: string): number {
  const env = process.env[name]
  return env !== undefined && env !== '' ? Number(env) >>> 0 : Math.floor(Math.random() * 2 ** 32)
}

/** Bytes no two (tag, offset) pairs share by accident: the test can tell every write apart. */
export function pattern(tag: number, length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (tag * 131 + i * 7 + (i >> 8)) & 0xff
  return b
}

/** Counts what reaches a device (a real pass-through, not a mock): bytes written, writes, flushes. */
export class CountingDevice extends PassThroughDevice {
  bytesWritten = 0
  writes: { offset: number; length: number }[] = []
  flushes = 0

  override async write(offset: number, data: Uint8Array): Promise<void> {
    await this.inner.write(offset, data)
    this.bytesWritten += data.length
    this.writes.push({ offset, length: data.length })
  }

  override async flush(): Promise<void> {
    await this.inner.flush()
    this.flushes++
  }

  reset(): void {
    this.bytesWritten = 0
    this.writes = []
    this.flushes = 0
  }
}

/** Lets every operation wait a seeded number of event-loop turns before and after, so concurrent ones interleave. */
export class SlowDevice extends PassThroughDevice {
  readonly #random: (n: number) => number

  constructor(inner: BlockDevice, seed: number) {
    super(inner)
    this.#random = rng(seed)
  }

  override async read(offset: number, length: number): Promise<Buffer> {
    await this.#pause()
    const b = await this.inner.read(offset, length)
    await this.#pause()
    return b
  }

  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    await this.#pause()
    await this.inner.readInto(offset, target)
    await this.#pause()
  }

  override async write(offset: number, data: Uint8Array): Promise<void> {
    await this.#pause()
    await this.inner.write(offset, data)
    await this.#pause()
  }

  override async flush(): Promise<void> {
    await this.#pause()
    await this.inner.flush()
  }

  async #pause(): Promise<void> {
    for (let n = this.#random(4); n > 0; n--) await new Promise<void>((resolve) => setImmediate(resolve))
  }
}

export interface Volume {
  origin: MemoryDevice
  storeMem: MemoryDevice
  store: SnapshotStore
  vol: OriginDevice
  events: VolumeEvent[]
}

/** How a test puts a device between the layer and memory (SlowDevice, say); the identity by default. */
export type Wrap = (dev: MemoryDevice, which: 'origin' | 'store') => BlockDevice

const bare: Wrap = (dev) => dev

/** An origin filled with `pattern(fill)` (unless fill is undefined) and a freshly formatted store. */
export async function makeVolume(opts: { originSize: number; storeSize: number; chunkSize: number; fill?: number; wrap?: Wrap } & OriginOptions): Promise<Volume> {
  const wrap = opts.wrap ?? bare
  const origin = new MemoryDevice(opts.originSize)
  if (opts.fill !== undefined) await origin.write(0, pattern(opts.fill, opts.originSize))
  const storeMem = new MemoryDevice(opts.storeSize)
  const store = await SnapshotStore.format(wrap(storeMem, 'store'), { chunkSize: opts.chunkSize })
  const events: VolumeEvent[] = []
  const vol = new OriginDevice(wrap(origin, 'origin'), store, { ...opts, onEvent: (e) => events.push(e) })
  return { origin, storeMem, store, vol, events }
}

/** Opens copies of both devices as they are now, as a restart would see them after a clean flush. */
export async function reopen(v: Pick<Volume, 'origin' | 'storeMem'>, options: OriginOptions & { wrap?: Wrap } = {}): Promise<Volume> {
  const wrap = options.wrap ?? bare
  const origin = v.origin.clone()
  const storeMem = v.storeMem.clone()
  const store = await SnapshotStore.open(wrap(storeMem, 'store'))
  const events: VolumeEvent[] = []
  const vol = new OriginDevice(wrap(origin, 'origin'), store, { ...options, onEvent: (e) => events.push(e) })
  return { origin, storeMem, store, vol, events }
}
