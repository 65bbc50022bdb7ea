import type { BlockDevice } from '../../engine/blockdev/block-device.ts'
import { VolumeError } from '../layer.ts'
import type { LayerStatus, MemberState, VolumeEventKind, VolumeEventSink } from '../layer.ts'

export interface Member {
  dev: BlockDevice
  state: MemberState
  reason?: string
  /** While rebuilding: stripes from 0 already whole on this member. */
  rebuilt: number
}

/**
 * The members of a RAID-5 and their states. A member whose read, write or flush fails is marked
 * failed here and no longer used; with two gone the volume is failed and refuses writes
 * (VOLUME_FAILED). Every member I/O of the layer goes through here, so no failure is missed.
 */
export class Raid5Members {
  readonly n: number
  readonly #m: Member[]
  readonly #onEvent: VolumeEventSink | undefined
  #failed = false

  constructor(devs: readonly BlockDevice[], onEvent: VolumeEventSink | undefined) {
    this.n = devs.length
    this.#m = devs.map((dev) => ({ dev, state: 'ok', rebuilt: 0 }))
    this.#onEvent = onEvent
  }

  /** Two or more members are out of service: writes are refused. */
  get failed(): boolean {
    return this.#failed
  }

  get devices(): readonly BlockDevice[] {
    return this.#m.map((m) => m.dev)
  }

  get degraded(): boolean {
    return this.#m.some((m) => m.state !== 'ok')
  }

  status(unit: number): LayerStatus['members'] {
    return this.#m.map((m, index) => ({
      index,
      state: m.state,
      ...(m.reason !== undefined ? { reason: m.reason } : {}),
      ...(m.state === 'rebuilding' ? { rebuilt: m.rebuilt * unit } : {}),
    }))
  }

  get(index: number): Member {
    const m = Number.isInteger(index) ? this.#m[index] : undefined
    if (m === undefined) throw new VolumeError('VOLUME_MEMBER', `no member ${index} in a RAID-5 of ${this.n}`)
    return m
  }

  dev(index: number): BlockDevice {
    return this.get(index).dev
  }

  /** Whether member `index` holds valid bytes for `stripe`. */
  readable(index: number, stripe: number): boolean {
    const m = this.#m[index]
    return m !== undefined && (m.state === 'ok' || (m.state === 'rebuilding' && m.rebuilt > stripe))
  }

  /** Whether member `index` is in service (ok or rebuilding): it takes writes. */
  live(index: number): boolean {
    const m = this.#m[index]
    return m !== undefined && m.state !== 'failed'
  }

  /** The first member not readable at `stripe`, or -1. */
  missingAt(stripe: number): number {
    return this.#m.findIndex((_, i) => !this.readable(i, stripe))
  }

  async read(index: number, offset: number, length: number): Promise<Buffer> {
    try {
      return await this.dev(index).read(offset, length)
    } catch (err) {
      this.markFailed(index, errorMessage(err))
      throw new MemberReadError(index, err)
    }
  }

  async readInto(index: number, offset: number, target: Uint8Array): Promise<void> {
    try {
      await this.dev(index).readInto(offset, target)
    } catch (err) {
      this.markFailed(index, errorMessage(err))
      throw new MemberReadError(index, err)
    }
  }

  /** One member write; a failure marks the member, and throws only if the volume failed. */
  async write(index: number, offset: number, data: Uint8Array): Promise<void> {
    try {
      await this.dev(index).write(offset, data)
    } catch (err) {
      this.markFailed(index, errorMessage(err))
      this.refuseIfFailed('write')
    }
  }

  /**
   * Runs `op` on each of `members` that is in service, every one even if another fails (with all
   * but one landed a stripe is consistent for the new data: the lost member's unit is what the
   * others imply); each member it fails is marked failed.
   */
  async each(members: readonly number[], op: (dev: BlockDevice, member: number) => Promise<void>): Promise<void> {
    const live = members.filter((i) => this.live(i))
    const results = await Promise.allSettled(live.map((i) => op(this.dev(i), i)))
    results.forEach((r, k) => {
      const member = live[k]
      if (r.status === 'rejected' && member !== undefined) this.markFailed(member, errorMessage(r.reason))
    })
  }

  /** Runs `op` on every member in service; a member it fails is marked failed. */
  onLive(op: (dev: BlockDevice) => Promise<void>): Promise<void> {
    return this.each(
      this.#m.map((_, i) => i),
      (dev) => op(dev),
    )
  }

  markFailed(index: number, reason: string): void {
    const m = this.#m[index]
    if (m === undefined || m.state === 'failed') return
    const wasOk = m.state === 'ok'
    m.state = 'failed'
    m.reason = reason
    this.emit('member-failed', `member ${index} failed: ${reason}`, index)
    // A member lost while another is rebuilding leaves the rebuild nothing to rebuild from.
    if (wasOk) for (const [i, other] of this.#m.entries()) if (other.state === 'rebuilding') this.markFailed(i, `rebuild source member ${index} failed`)
    if (!this.#failed && this.#m.filter((x) => x.state === 'failed').length >= 2) {
      this.#failed = true
      this.emit('volume-failed', `${this.#m.filter((x) => x.state === 'failed').length} members out of service: writes refused`)
    }
  }

  refuseIfFailed(what: string): void {
    if (this.#failed) throw new VolumeError('VOLUME_FAILED', `${what} refused: two or more members of the RAID-5 are out of service`)
  }

  emit(kind: VolumeEventKind, message: string, member?: number, offset?: number, length?: number): void {
    this.#onEvent?.({
      kind,
      layer: 'raid5',
      message,
      ...(member !== undefined ? { member } : {}),
      ...(offset !== undefined ? { offset } : {}),
      ...(length !== undefined ? { length } : {}),
    })
  }

  close(): Promise<PromiseSettledResult<void>[]> {
    return Promise.allSettled(this.#m.map((m) => m.dev.close()))
  }
}

/** A member read failed (the member is marked failed already): the stripe operation plans again. */
export class MemberReadError extends Error {
  constructor(index: number, cause: unknown) {
    super(`member ${index} read failed: ${errorMessage(cause)}`, { cause })
    this.name = 'MemberReadError'
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Waits for every promise (none left running behind a rejection), then rethrows the first error. */
export async function settleAll(all: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(all)
  for (const r of results) if (r.status === 'rejected') throw r.reason
}
