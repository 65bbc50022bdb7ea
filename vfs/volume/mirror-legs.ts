import { closedError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { MemberState, MemberStatus, VolumeEvent, VolumeEventSink } from './layer.ts'
import { VolumeError } from './layer.ts'
import { ClientTurns } from './paced-steps.ts'
import { RangeLock } from './range-lock.ts'

export interface Leg {
  readonly dev: BlockDevice
  state: MemberState
  reason?: string
  /** While rebuilding: bytes from the start already copied (reads may use the leg below this). */
  rebuilt?: number
}

export interface LegReadOptions {
  /** The caller holds the exclusive lock on the range: repair in place, no second lock. */
  readonly locked: boolean
  /** Try legs in index order (the "first ok leg" of resync) instead of round-robin. */
  readonly inOrder?: boolean
  readonly exclude?: number
}

/**
 * A mirror's legs and their states, the range lock every copy takes, events, and the read path
 * with read-repair, shared by the client I/O (mirror.ts) and the copy loops (mirror-copy.ts).
 */
export class MirrorLegs {
  readonly legs: Leg[]
  readonly lock = new RangeLock()
  /** Client reads and writes, which a rebuild step gives way to (paced-steps.ts). */
  readonly clients = new ClientTurns()
  readonly #onEvent: VolumeEventSink | undefined
  #next = 0
  #volumeFailed = false
  /**
   * Aborted by the mirror's close: a copy still running stops at its next step or out of its
   * rate sleep, and the errors of devices closed under it are not leg failures (no member-failed
   * storm on shutdown).
   */
  readonly #stop = new AbortController()

  constructor(devs: readonly BlockDevice[], onEvent: VolumeEventSink | undefined) {
    this.legs = devs.map((dev) => ({ dev, state: 'ok' }))
    this.#onEvent = onEvent
  }

  get closed(): boolean {
    return this.#stop.signal.aborted
  }

  get stopSignal(): AbortSignal {
    return this.#stop.signal
  }

  shutdown(): void {
    this.#stop.abort(closedError('copy'))
  }

  emit(event: Omit<VolumeEvent, 'layer'>): void {
    this.#onEvent?.({ ...event, layer: 'mirror' })
  }

  /** Legs in state ok: whole copies of the volume. */
  ok(): number[] {
    return this.#indices((l) => l.state === 'ok')
  }

  /** Legs that take writes: ok and rebuilding. */
  live(): number[] {
    return this.#indices((l) => l.state !== 'failed')
  }

  /** No whole copy left: writes refuse. */
  get failed(): boolean {
    return this.ok().length === 0
  }

  /**
   * Marks leg `index` failed, if it still holds `dev` (a write to a leg that `replace` swapped
   * out meanwhile says nothing about the new device).
   */
  fail(index: number, dev: BlockDevice, cause: unknown): void {
    const leg = this.legs[index]
    if (this.closed || leg?.dev !== dev || leg.state === 'failed') return
    const reason = cause instanceof Error ? cause.message : String(cause)
    leg.state = 'failed'
    leg.reason = reason
    delete leg.rebuilt
    this.emit({ kind: 'member-failed', member: index, message: `leg ${index} failed: ${reason}` })
    if (this.failed && !this.#volumeFailed) {
      this.#volumeFailed = true
      this.emit({ kind: 'volume-failed', message: 'no whole leg left: writes refused' })
    }
  }

  /** Runs `io` on every live leg at once; a leg whose `io` fails is marked failed. */
  async eachLive(io: (dev: BlockDevice) => Promise<void>): Promise<void> {
    const targets = this.live().map((i) => ({ i, dev: (this.legs[i] as Leg).dev }))
    const results = await Promise.allSettled(targets.map((t) => io(t.dev)))
    for (const [k, r] of results.entries()) {
      const t = targets[k] as { i: number; dev: BlockDevice }
      if (r.status === 'rejected') this.fail(t.i, t.dev, r.reason)
    }
  }

  status(): MemberStatus[] {
    return this.legs.map((l, index) => ({
      index,
      state: l.state,
      ...(l.reason === undefined ? {} : { reason: l.reason }),
      ...(l.state === 'rebuilding' ? { rebuilt: l.rebuilt ?? 0 } : {}),
    }))
  }

  /**
   * Reads [offset, offset + target.length) from the first leg that can serve it: ok legs, and a
   * rebuilding leg below its watermark. A leg whose read fails gets the good bytes written back
   * (md's read-repair: a sector the disk could not read is usually fixed by rewriting it), and
   * is marked failed if even that fails. Resolves with the index of the leg that served.
   */
  async readInto(offset: number, target: Uint8Array, opts: LegReadOptions): Promise<number> {
    const end = offset + target.length
    let order = this.#indices((l, i) => i !== opts.exclude && serves(l, end))
    if (opts.inOrder !== true && order.length > 1) {
      const k = this.#next++ % order.length
      order = [...order.slice(k), ...order.slice(0, k)]
    }
    const bad: number[] = []
    let lastError: unknown = undefined
    for (const i of order) {
      const leg = this.legs[i] as Leg
      // While an earlier leg was tried, this one may have failed (missing a write) or been replaced by a blank one.
      if (!serves(leg, end)) continue
      const dev = leg.dev
      try {
        await dev.readInto(offset, target)
      } catch (err) {
        bad.push(i)
        lastError = err
        continue
      }
      if (bad.length > 0) {
        if (opts.locked) await this.#rewrite(offset, target, bad)
        else await this.lock.with(offset, target.length, true, () => this.#repair(offset, target.length, bad))
      }
      return i
    }
    throw new VolumeError('VOLUME_FAILED', `no leg could read ${target.length} bytes at ${offset}`, { cause: lastError })
  }

  /** Under the exclusive lock: re-reads the range (a write may have changed it since the client's read) and rewrites it on `bad`. */
  async #repair(offset: number, length: number, bad: readonly number[]): Promise<void> {
    const good = Buffer.alloc(length)
    const others = this.#indices((l, i) => l.state === 'ok' && !bad.includes(i))
    for (const i of others) {
      try {
        await (this.legs[i] as Leg).dev.readInto(offset, good)
      } catch {
        continue // this leg will show up bad on a later read; the client already has its data
      }
      await this.#rewrite(offset, good, bad)
      return
    }
  }

  async #rewrite(offset: number, good: Uint8Array, bad: readonly number[]): Promise<void> {
    await Promise.all(
      bad.map(async (i) => {
        const leg = this.legs[i] as Leg
        if (leg.state === 'failed') return
        const dev = leg.dev
        try {
          await dev.write(offset, good)
          this.emit({ kind: 'read-repaired', member: i, offset, length: good.length, message: `leg ${i}: ${good.length} bytes at ${offset} rewritten from a good copy` })
        } catch (err) {
          this.fail(i, dev, err)
        }
      }),
    )
  }

  #indices(pred: (l: Leg, i: number) => boolean): number[] {
    const out: number[] = []
    for (const [i, l] of this.legs.entries()) if (pred(l, i)) out.push(i)
    return out
  }
}

/** A leg can serve [.., end) if it is whole, or rebuilt at least that far. */
function serves(leg: Leg, end: number): boolean {
  return leg.state === 'ok' || (leg.state === 'rebuilding' && (leg.rebuilt ?? 0) >= end)
}
