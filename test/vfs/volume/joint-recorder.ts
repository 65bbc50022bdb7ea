import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import type { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'

/** One write on one of the recorded devices; `completed` is Infinity while it is in flight. */
export interface JointWrite {
  readonly dev: number
  readonly offset: number
  readonly data: Buffer
  readonly issued: number
  completed: number
}

export interface JointFlush {
  readonly dev: number
  readonly called: number
  readonly completed: number
}

/**
 * RecordingDevice's model for several devices on one clock: a snapshot layer's safety is an order
 * *between* the store and the origin (the copy durable before the origin write), which two
 * separate recorders cannot express. A crash at tick T leaves, on each device, every write a
 * flush of that device called after it completed and finished before T made durable, plus any
 * subset of the other writes issued before T (one of them possibly torn at a sector boundary).
 */
export class JointRecorder {
  #clock = 0
  readonly writes: JointWrite[] = []
  readonly #flushes: JointFlush[] = []

  get now(): number {
    return this.#clock
  }

  /** Completed flushes, in completion order (a crash just after one finds its writes durable). */
  get flushes(): readonly JointFlush[] {
    return this.#flushes
  }

  wrap(dev: number, inner: BlockDevice): BlockDevice {
    return new JointMember(inner, dev, this.writes, this.#flushes, () => this.#clock++)
  }

  /** Writes surely on the medium, and those that may be, after a crash at tick `at`. */
  split(at: number): { durable: JointWrite[]; pending: JointWrite[] } {
    const durable: JointWrite[] = []
    const pending: JointWrite[] = []
    for (const w of this.writes) {
      if (w.issued >= at) continue
      const flushed = this.#flushes.some((f) => f.dev === w.dev && f.called > w.completed && f.completed < at)
      ;(flushed ? durable : pending).push(w)
    }
    return { durable, pending }
  }

  /** Lays the writes on clones of the bases, in completion order; `torn` keeps only its first `sectors` sectors. */
  build(bases: readonly MemoryDevice[], writes: readonly JointWrite[], torn?: { write: JointWrite; sectors: number }): MemoryDevice[] {
    const devs = bases.map((b) => b.clone({ readOnly: false }))
    const order = [...writes].sort((a, b) => a.completed - b.completed || a.issued - b.issued)
    for (const w of order) {
      const dev = devs[w.dev]
      if (dev === undefined) throw new Error(`no base for device ${w.dev}`)
      if (torn?.write === w) {
        const keep = (Math.floor(w.offset / dev.sectorSize) + torn.sectors) * dev.sectorSize - w.offset
        dev.writeSync(w.offset, w.data.subarray(0, keep))
      } else {
        dev.writeSync(w.offset, w.data)
      }
    }
    return devs
  }
}

/** Sectors a write touches. */
export function sectorsOf(w: JointWrite, sectorSize: number): number {
  return Math.floor((w.offset + w.data.length - 1) / sectorSize) - Math.floor(w.offset / sectorSize) + 1
}

/** One recorded device: reads pass through; writes and flushes are logged on the recorder's clock. */
class JointMember extends PassThroughDevice {
  readonly #dev: number
  readonly #writes: JointWrite[]
  readonly #flushes: JointFlush[]
  readonly #tick: () => number

  constructor(inner: BlockDevice, dev: number, writes: JointWrite[], flushes: JointFlush[], tick: () => number) {
    super(inner)
    this.#dev = dev
    this.#writes = writes
    this.#flushes = flushes
    this.#tick = tick
  }

  override async write(offset: number, data: Uint8Array): Promise<void> {
    const w: JointWrite = { dev: this.#dev, offset, data: Buffer.from(data), issued: this.#tick(), completed: Infinity }
    this.#writes.push(w)
    await this.inner.write(offset, data)
    w.completed = this.#tick()
  }

  override async flush(): Promise<void> {
    const called = this.#tick()
    await this.inner.flush()
    this.#flushes.push({ dev: this.#dev, called, completed: this.#tick() })
  }
}
