import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { checkRange } from '../../../vfs/engine/blockdev/block-device.ts'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { Raid5Device } from '../../../vfs/volume/raid5.ts'
import type { Raid5Options } from '../../../vfs/volume/raid5.ts'
import type { VolumeEvent } from '../../../vfs/volume/layer.ts'

/** The shared seeded generator (mulberry32), under the name this file's tests use. */
export { prng as rng } from '../../helpers/prng.ts'

/** The seed from `env` (to reproduce a failure) or a fresh one. */
export function seedFrom(env: string): number {
  const v = process.env[env]
  return v !== undefined && v !== '' ? Number(v) : Math.floor(Math.random() * 2 ** 31)
}

export function int(r: () => number, below: number): number {
  return Math.floor(r() * below)
}

export function randomBytes(r: () => number, length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = int(r, 256)
  return b
}

/** A random write: offsets near unit edges as often as anywhere, lengths from 1 byte to 3 stripes. */
export function randomRange(r: () => number, size: number, unit: number, row: number): { offset: number; length: number } {
  const pick = int(r, 4)
  let offset = pick === 0 ? int(r, size / unit) * unit : int(r, size)
  if (offset >= size) offset = size - 1
  const maxLen = Math.min(size - offset, pick === 1 ? row : 3 * row)
  const length = pick === 2 ? Math.min(size - offset, row - (offset % row) || row) : 1 + int(r, maxLen)
  return { offset, length: Math.max(1, Math.min(length, size - offset)) }
}

/** Counts member reads and the bytes they asked for (the no-read-modify-write claims). */
export class CountingDevice extends PassThroughDevice {
  reads = 0
  readBytes = 0
  writes = 0
  override read(offset: number, length: number): Promise<Buffer> {
    this.reads++
    this.readBytes += length
    return this.inner.read(offset, length)
  }
  override readInto(offset: number, target: Uint8Array): Promise<void> {
    this.reads++
    this.readBytes += target.length
    return this.inner.readInto(offset, target)
  }
  override write(offset: number, data: Uint8Array): Promise<void> {
    this.writes++
    return this.inner.write(offset, data)
  }
}

/** A window [start, start + size) of another device, so a bitmap copy can share a member's disk. */
export class WindowDevice extends PassThroughDevice {
  readonly start: number
  readonly #size: number
  constructor(inner: BlockDevice, start: number, size: number) {
    super(inner)
    this.start = start
    this.#size = size
  }
  override get size(): number {
    return this.#size
  }
  override async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.size, offset, length, 'read')
    return this.inner.read(this.start + offset, length)
  }
  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    checkRange(this.size, offset, target.length, 'read')
    return this.inner.readInto(this.start + offset, target)
  }
  override async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this.size, offset, data.length, 'write')
    return this.inner.write(this.start + offset, data)
  }
  /** The member's owner closes it, not the window. */
  override close(): Promise<void> {
    return Promise.resolve()
  }
}

export interface Rig {
  raid: Raid5Device
  devs: MemoryDevice[]
  model: Buffer
  events: VolumeEvent[]
}

/** n members of `stripes` units each, filled with seeded content written through the volume. */
export async function filledRaid(n: number, unit: number, stripes: number, r: () => number, members?: (dev: MemoryDevice, i: number) => BlockDevice, opts: Raid5Options = {}): Promise<Rig & { wrapped: BlockDevice[] }> {
  const devs = Array.from({ length: n }, () => new MemoryDevice(unit * stripes))
  const wrapped = devs.map((d, i) => (members === undefined ? d : members(d, i)))
  const events: VolumeEvent[] = []
  const raid = new Raid5Device(wrapped, { unit, onEvent: (e) => events.push(e), ...opts })
  const model = randomBytes(r, raid.size)
  await raid.write(0, model)
  return { raid, devs, model, events, wrapped }
}

/** Writes `data` at `offset` through the volume and into the model once acknowledged. */
export async function put(rig: { raid: Raid5Device; model: Buffer }, offset: number, data: Buffer): Promise<void> {
  await rig.raid.write(offset, data)
  data.copy(rig.model, offset)
}

/** Deterministic bytes for a seed (a linear congruential generator): data to write and check. */
export function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}
