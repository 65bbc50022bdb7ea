import { PassThroughDevice } from './pass-through.ts'

/** Which operations a fault hits. */
export type FaultOp = 'read' | 'write' | 'flush'

/**
 * A fault: `eio` fails the operation as a dying disk does (an Error with code EIO, as node:fs
 * gives), `gone` fails it as a disk that disappeared does (ENXIO, and every later operation too),
 * `corrupt` lets a read succeed with wrong bytes (every byte of the range inverted), the silent
 * damage only checksums or a scrub find. A range limits the fault to operations overlapping
 * [offset, offset + length); without one it hits every offset.
 */
export interface Fault {
  readonly kind: 'eio' | 'gone' | 'corrupt'
  readonly ops?: readonly FaultOp[]
  readonly offset?: number
  readonly length?: number
}

/** Errors shaped as node:fs's, so layers and the engine handle injected and real faults alike. */
export function ioError(code: 'EIO' | 'ENXIO', what: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: ${what}`)
  err.code = code
  err.errno = code === 'EIO' ? -5 : -6
  return err
}

/**
 * Wraps any device and injects faults, for tests of the layers above (mirror, RAID-5, the engine).
 * Faults can be armed at once or after a number of operations (`armAfter`), so a test can pick
 * "any moment of a running workload" with a seeded random count.
 */
export class FaultDevice extends PassThroughDevice {
  #faults: Fault[] = []
  #gone = false
  #ops = 0
  #pending: { at: number; fault: Fault }[] = []
  /** Operations this device has seen (reads, writes and flushes started). */
  get ops(): number {
    return this.#ops
  }

  get gone(): boolean {
    return this.#gone
  }

  /** Arms a fault now. */
  inject(fault: Fault): void {
    if (fault.kind === 'gone') this.#gone = true
    else this.#faults.push(fault)
  }

  /** Arms a fault when this device has seen `ops` more operations. */
  armAfter(ops: number, fault: Fault): void {
    this.#pending.push({ at: this.#ops + ops, fault })
  }

  /** Removes every fault (a disk that came back; `gone` too). */
  heal(): void {
    this.#faults = []
    this.#pending = []
    this.#gone = false
  }

  override async read(offset: number, length: number): Promise<Buffer> {
    this.#check('read', offset, length)
    const data = await this.inner.read(offset, length)
    this.#corrupt(offset, data)
    return data
  }

  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.#check('read', offset, target.length)
    await this.inner.readInto(offset, target)
    this.#corrupt(offset, target)
  }

  override async write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write', offset, data.length)
    await this.inner.write(offset, data)
  }

  override async flush(): Promise<void> {
    this.#check('flush', 0, this.size)
    await this.inner.flush()
  }

  #check(op: FaultOp, offset: number, length: number): void {
    this.#ops++
    if (this.#pending.length > 0) {
      const due = this.#pending.filter((p) => p.at <= this.#ops)
      this.#pending = this.#pending.filter((p) => p.at > this.#ops)
      for (const p of due) this.inject(p.fault)
    }
    if (this.#gone) throw ioError('ENXIO', `${op} at ${offset}: the device is gone`)
    for (const f of this.#faults) {
      if (f.kind === 'eio' && hits(f, op, offset, length)) throw ioError('EIO', `${op} of ${length} bytes at ${offset}: injected I/O error`)
    }
  }

  #corrupt(offset: number, data: Uint8Array): void {
    for (const f of this.#faults) {
      if (f.kind !== 'corrupt' || !hits(f, 'read', offset, data.length)) continue
      const from = Math.max(offset, f.offset ?? 0) - offset
      const to = Math.min(offset + data.length, f.length === undefined ? Infinity : (f.offset ?? 0) + f.length) - offset
      for (let i = from; i < to; i++) data[i] = (data[i] ?? 0) ^ 0xff
    }
  }
}

function hits(f: Fault, op: FaultOp, offset: number, length: number): boolean {
  if (f.ops !== undefined && !f.ops.includes(op)) return false
  if (f.offset === undefined || op === 'flush') return true
  const end = f.length === undefined ? Infinity : f.offset + f.length
  return offset < end && offset + length > f.offset
}
