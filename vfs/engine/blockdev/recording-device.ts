import { BlockDevError } from './block-device.ts'
import type { MemoryDevice } from './memory-device.ts'
import { PassThroughDevice } from './pass-through.ts'

/** One write as the device saw it: the bytes are a copy taken when it was issued. */
export interface RecordedWrite {
  readonly offset: number
  readonly data: Buffer
  /** Ticks of the recorder's clock, which counts every issue and completion. */
  readonly issued: number
  readonly completed: number
}

export interface RecordedFlush {
  readonly called: number
  readonly completed: number
}

/**
 * A crash state after `flushes` flushes had completed (0 … flushCount): every write those made
 * durable, plus the writes of `pending(flushes)` whose indices are in `apply`, plus optionally
 * one more of them `torn`, of which only its first `sectors` sectors reached the medium.
 */
export interface CrashState {
  readonly flushes: number
  readonly apply: readonly number[]
  readonly torn?: { readonly write: number; readonly sectors: number }
}

/**
 * Wraps any device and logs every write and flush, for the crash checker: from the log and the
 * device's content when recording began it builds every disk state a power cut could leave.
 *
 * The model is BlockDevice's contract. A flush makes durable exactly the writes that completed
 * before it was called. After the k-th completed flush, a crash may leave any subset of the
 * writes not yet durable that were issued before flush k+1 completed, one of them possibly torn
 * at a sector boundary. Writes land in completion order; two writes to one range that were in
 * flight together have no defined order on a real disk, and the engine must not issue them.
 * A write or flush the inner device fails is not logged (the engine must treat it as an I/O
 * error anyway). The log keeps a copy of every byte written: a tool for tests, not production.
 */
export class RecordingDevice extends PassThroughDevice {
  #writes: RecordedWrite[] = []
  #flushes: RecordedFlush[] = []
  #clock = 0

  /** Writes in completion order. */
  get writes(): readonly RecordedWrite[] {
    return this.#writes
  }

  /** Completed flushes in call order. */
  get flushes(): readonly RecordedFlush[] {
    return this.#flushes
  }

  override async write(offset: number, data: Uint8Array): Promise<void> {
    const copy = Buffer.from(data)
    const issued = this.#clock++
    await this.inner.write(offset, data)
    this.#writes.push({ offset, data: copy, issued, completed: this.#clock++ })
  }

  override async flush(): Promise<void> {
    const called = this.#clock++
    await this.inner.flush()
    this.#flushes.push({ called, completed: this.#clock++ })
  }

  /** Writes made durable once `k` flushes have completed, in the order they land. */
  durable(k: number): RecordedWrite[] {
    this.#checkK(k)
    if (k === 0) return []
    const barrier = this.#flushes[k - 1]?.called ?? 0
    return this.#writes.filter((w) => w.completed < barrier)
  }

  /** Writes that may or may not be on the medium if the power fails after `k` completed flushes. */
  pending(k: number): RecordedWrite[] {
    this.#checkK(k)
    const barrier = k === 0 ? -1 : (this.#flushes[k - 1]?.called ?? -1)
    const horizon = this.#flushes[k]?.completed ?? Infinity
    return this.#writes.filter((w) => w.completed > barrier && w.issued < horizon)
  }

  /**
   * The device a power cut in `state` leaves: `base` (the content when recording began, which the
   * caller kept, e.g. as a MemoryDevice clone) copied, then the durable writes, the chosen pending
   * ones and the torn prefix laid on it in completion order.
   */
  crashState(base: MemoryDevice, state: CrashState): MemoryDevice {
    if (base.size !== this.size) throw spec(`base of ${base.size} bytes for a device of ${this.size}`)
    const durable = base.clone({ readOnly: false })
    for (const w of this.durable(state.flushes)) durable.writeSync(w.offset, w.data)
    return this.crashStateOn(durable, state)
  }

  /**
   * Lays on `dev`, which holds the durable image after `k - 1` flushes (the base for k = 1), the
   * writes flush `k` made durable, so that it holds the durable image after `k`. The checker walks
   * the boundaries in order with one device, instead of re-laying the whole log for every state:
   * the writes durable at k completed after all those durable at k - 1, so the order is the same.
   */
  advanceDurable(dev: MemoryDevice, k: number): void {
    this.#checkK(k)
    if (k === 0) throw spec('nothing is durable after 0 flushes: the base is that image')
    const from = k === 1 ? -1 : (this.#flushes[k - 2]?.called ?? -1)
    const to = this.#flushes[k - 1]?.called ?? -1
    for (const w of this.#writes) if (w.completed > from && w.completed < to) dev.writeSync(w.offset, w.data)
  }

  /** As crashState, from `durable`, the durable image after `state.flushes` flushes (left unchanged). */
  crashStateOn(durable: MemoryDevice, state: CrashState): MemoryDevice {
    if (durable.size !== this.size) throw spec(`base of ${durable.size} bytes for a device of ${this.size}`)
    const pending = this.pending(state.flushes)
    const chosen = new Map<RecordedWrite, Buffer>()
    for (const i of state.apply) {
      const w = pending[i]
      if (w === undefined || !Number.isInteger(i)) throw spec(`apply index ${i} outside the ${pending.length} pending writes`)
      chosen.set(w, w.data)
    }
    if (state.torn !== undefined) {
      const { write, sectors } = state.torn
      const w = pending[write]
      if (w === undefined || !Number.isInteger(write)) throw spec(`torn index ${write} outside the ${pending.length} pending writes`)
      if (chosen.has(w)) throw spec(`write ${write} is both applied whole and torn`)
      const kept = tornLength(w, this.sectorSize, sectors)
      chosen.set(w, w.data.subarray(0, kept))
    }
    const dev = durable.clone({ readOnly: false })
    for (const w of pending) {
      const data = chosen.get(w)
      if (data !== undefined) dev.writeSync(w.offset, data)
    }
    return dev
  }

  #checkK(k: number): void {
    if (!Number.isInteger(k) || k < 0 || k > this.#flushes.length) throw spec(`${k} flushes, but ${this.#flushes.length} were recorded`)
  }
}

/** How many sectors a write touches: a torn version keeps 1 … sectorsTouched(w) - 1 of them. */
export function sectorsTouched(w: RecordedWrite, sectorSize: number): number {
  if (w.data.length === 0) return 0
  const first = Math.floor(w.offset / sectorSize)
  const last = Math.floor((w.offset + w.data.length - 1) / sectorSize)
  return last - first + 1
}

/** Bytes kept when only the first `sectors` sectors of `w` reach the medium (boundaries are the device's). */
function tornLength(w: RecordedWrite, sectorSize: number, sectors: number): number {
  const touched = sectorsTouched(w, sectorSize)
  if (!Number.isInteger(sectors) || sectors < 1 || sectors >= touched) {
    throw spec(`a torn write keeps 1 to ${touched - 1} of its ${touched} sectors, not ${sectors}`)
  }
  return (Math.floor(w.offset / sectorSize) + sectors) * sectorSize - w.offset
}

function spec(message: string): BlockDevError {
  return new BlockDevError('BLOCKDEV_CRASH_SPEC', message)
}
