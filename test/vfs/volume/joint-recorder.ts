import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import type { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'

/** One write on one of the recorded devices; `completed` is Infinity while it is in flight. */
export interface JointWrite {
  readonly dev: number
  readonly offset: number
  readonly data: Buffer
  readonly issued: number
  completed: number
}

interface JointFlush {
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

  wrap(dev: number, inner: BlockDevice): BlockDevice {
    const writes = this.writes
    const flushes = this.#flushes
    const tick = (): number => this.#clock++
    return {
      get size() {
        return inner.size
      },
      get sectorSize() {
        return inner.sectorSize
      },
      get readOnly() {
        return inner.readOnly
      },
      read: (offset, length) => inner.read(offset, length),
      readInto: (offset, target) => inner.readInto(offset, target),
      write: async (offset, data) => {
        const w: JointWrite = { dev, offset, data: Buffer.from(data), issued: tick(), completed: Infinity }
        writes.push(w)
        await inner.write(offset, data)
        w.completed = tick()
      },
      flush: async () => {
        const called = tick()
        await inner.flush()
        flushes.push({ dev, called, completed: tick() })
      },
      close: () => inner.close(),
    }
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
