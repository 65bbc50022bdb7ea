import { checkRange, closedError, readOnlyError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { DEFAULT_UNIT, VolumeError } from './layer.ts'
import type { IntentLog, Layer, LayerStatus, RebuildOptions, RedundantOptions } from './layer.ts'
import type { Raid5Core } from './raid5/core.ts'
import { Raid5Members } from './raid5/members.ts'
import { readStripes } from './raid5/read-path.ts'
import { rebuildMember } from './raid5/rebuild.ts'
import { resyncDirty, scrubStripes } from './raid5/scrub.ts'
import type { ScrubResult } from './raid5/scrub.ts'
import { writeStripes } from './raid5/write-path.ts'
import { RunBuffers } from './raid5-buffers.ts'
import { StripeLocks } from './stripe-lock.ts'
import { WriteGenerations } from './write-generations.ts'

export type { ScrubResult } from './raid5/scrub.ts'

export interface Raid5Options extends RedundantOptions {
  /** Bytes per unit (md's chunk); a multiple of every member's sector size. */
  unit?: number
}

/**
 * RAID-5 over n ≥ 3 members in md's left-symmetric layout (parity.ts): every stripe holds n-1
 * data units and their XOR, so any one member can be lost and its units recomputed from the rest.
 *
 * This file is the device: checks, state and the order of things. The parts live beside it in
 * raid5/: members.ts (member states, failures), geometry.ts (a write cut along stripes),
 * write-path.ts (whole-stripe runs, read-modify-write, reconstruct-write), read-path.ts (reads,
 * degraded reconstruction), rebuild.ts (online replace), scrub.ts (scrub and resync).
 *
 * Writes take the stripe's lock. A member whose read, write or flush fails is marked failed and
 * no longer used; with two gone the volume refuses writes (VOLUME_FAILED) and serves only reads of
 * units on live members. With an intent log, every write marks its range durably dirty before
 * touching a member, so after a crash `resync()` recomputes the parity of those regions only —
 * the write hole closed.
 */
export class Raid5Device implements Layer {
  readonly kind = 'raid5' as const
  readonly size: number
  readonly sectorSize: number
  readonly readOnly: boolean
  readonly unit: number
  /** Stripes (units per member) the volume uses. */
  readonly stripes: number
  readonly #core: Raid5Core
  readonly #members: Raid5Members
  readonly #intent: IntentLog | undefined
  #closed = false
  readonly #closing = new AbortController()
  /** Client reads and writes ever started: a rebuild step that saw some gives way (see replace). */
  #clientOps = 0
  /** Numbers every member-writing operation for the intent log (a flush settles what it made durable). */
  readonly #generations = new WriteGenerations()

  constructor(members: readonly BlockDevice[], opts: Raid5Options = {}) {
    if (members.length < 3) throw new VolumeError('VOLUME_LAYOUT', `RAID-5 needs at least 3 members, got ${members.length}`)
    const unit = opts.unit ?? DEFAULT_UNIT
    const sectorSize = Math.max(...members.map((d) => d.sectorSize))
    if (!Number.isSafeInteger(unit) || unit <= 0 || members.some((d) => unit % d.sectorSize !== 0)) {
      throw new VolumeError('VOLUME_LAYOUT', `unit ${unit} is not a positive multiple of every member's sector size`)
    }
    const stripes = Math.floor(Math.min(...members.map((d) => d.size)) / unit)
    if (stripes < 1) throw new VolumeError('VOLUME_LAYOUT', `the smallest member holds no whole unit of ${unit} bytes`)
    this.unit = unit
    this.stripes = stripes
    this.size = (members.length - 1) * stripes * unit
    this.sectorSize = sectorSize
    this.readOnly = members.some((d) => d.readOnly)
    this.#members = new Raid5Members(members, opts.onEvent)
    this.#intent = opts.intent
    this.#core = {
      n: members.length,
      unit,
      stripes,
      members: this.#members,
      locks: new StripeLocks(),
      intent: opts.intent,
      generations: this.#generations,
      runBuffers: new RunBuffers(16 * 1024 * 1024),
    }
  }

  get members(): readonly BlockDevice[] {
    return this.#members.devices
  }

  status(): LayerStatus {
    return {
      kind: 'raid5',
      size: this.size,
      degraded: this.#members.degraded,
      failed: this.#members.failed,
      members: this.#members.status(this.unit),
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length)
    await this.readInto(offset, out)
    return out
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    if (this.#closed) throw closedError('read')
    checkRange(this.size, offset, target.length, 'read')
    this.#clientOps++
    await readStripes(this.#core, offset, target)
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.#closed) throw closedError('write')
    if (this.readOnly) throw readOnlyError(offset)
    checkRange(this.size, offset, data.length, 'write')
    if (data.length === 0) return
    this.#members.refuseIfFailed('write')
    this.#clientOps++
    await this.#generations.run(async (generation) => {
      await this.#intent?.mark(offset, data.length, generation)
      await writeStripes(this.#core, offset, data)
    })
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError('flush')
    // Only operations complete before the flush began are surely durable after it: the regions
    // they alone marked clear; one a running or later write marked stays dirty.
    const before = this.#generations.horizon()
    await this.#members.onLive((dev) => dev.flush())
    this.#members.refuseIfFailed('flush')
    await this.#intent?.settle(before)
  }

  /**
   * A clean close flushes the members and clears every bit their writes alone set, however
   * recent, so the next open resyncs nothing. Best effort: if it fails (a member gone), the bits
   * stay and the next open resyncs those regions, which is always safe.
   */
  async #finalSettle(): Promise<void> {
    const intent = this.#intent
    // Read-only: the bits found dirty at open were not resynced; they stay for a read-write open.
    if (intent?.settleFinal === undefined || this.readOnly) return
    try {
      const before = this.#generations.horizon()
      await this.#members.onLive((dev) => dev.flush())
      this.#members.refuseIfFailed('flush')
      await intent.settleFinal(before)
    } catch {
      // see above
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    await this.#finalSettle()
    this.#closed = true
    // A rebuild sleeping for its rate must not keep a closed volume (and the process) alive.
    this.#closing.abort(closedError('rebuild'))
    await this.#members.close()
  }

  /** Takes a member out of service (an administrator's decision, or a test's). */
  fail(index: number): void {
    this.#members.get(index)
    this.#members.markFailed(index, 'failed by request')
  }

  /**
   * Puts `dev` in place of failed member `index` and rebuilds it online: each stripe's unit is
   * recomputed from the others under that stripe's lock, so client writes in between are never
   * lost; reads use the new member only below what is rebuilt. Resolves when it is whole, with
   * the bytes rebuilt. With `opts.resumeFrom` it continues a rebuild a crash cut short (see
   * RebuildOptions): the stripes below it are taken as whole (a resync started after this call
   * recomputes the dirty ones' parity with the new member's units).
   */
  async replace(index: number, dev: BlockDevice, opts: RebuildOptions = {}): Promise<number> {
    if (this.#closed) throw closedError('replace')
    const m = this.#members.get(index)
    if (m.state !== 'failed') throw new VolumeError('VOLUME_MEMBER', `member ${index} is ${m.state}; only a failed member can be replaced`)
    this.#members.refuseIfFailed('replace')
    if (dev.readOnly) throw new VolumeError('VOLUME_MEMBER', `the replacement for member ${index} is read-only`)
    if (dev.size < this.stripes * this.unit || this.unit % dev.sectorSize !== 0) {
      throw new VolumeError('VOLUME_LAYOUT', `the replacement (${dev.size} bytes, sectors of ${dev.sectorSize}) cannot hold ${this.stripes} units of ${this.unit}`)
    }
    const total = this.stripes * this.unit
    const from = opts.resumeFrom ?? 0
    if (!Number.isSafeInteger(from) || from < 0 || from > total || from % this.unit !== 0) {
      throw new VolumeError('VOLUME_LAYOUT', `resume from ${from}: not a unit boundary within the member's ${total} bytes`)
    }
    m.dev = dev
    m.state = 'rebuilding'
    m.rebuilt = from / this.unit
    delete m.reason
    this.#members.emit('rebuild-started', `rebuilding member ${index} (${total - from} bytes${from > 0 ? ` from ${from}` : ''})`, index, from, total - from)
    const ctx = { clientOps: (): number => this.#clientOps, closing: this.#closing.signal }
    const rebuiltBytes = await rebuildMember(this.#core, ctx, index, dev, from, opts)
    m.state = 'ok'
    m.rebuilt = 0
    this.#members.emit('rebuild-done', `member ${index} rebuilt`, index, 0, total)
    return rebuiltBytes
  }

  /**
   * Recomputes every stripe's parity from its data and counts the stripes whose stored parity
   * differs; with `repair`, rewrites those parities. Needs every member in service. Progress is
   * in volume bytes checked, after each stripe.
   */
  async scrub(opts: { repair?: boolean; onProgress?: RebuildOptions['onProgress'] } = {}): Promise<ScrubResult> {
    if (this.#closed) throw closedError('scrub')
    const repair = opts.repair === true
    if (repair && this.readOnly) throw readOnlyError(0)
    if (repair) this.#members.refuseIfFailed('scrub')
    if (this.#members.degraded) throw new VolumeError('VOLUME_MEMBER', 'scrub needs every member in service')
    return scrubStripes(this.#core, repair, () => this.flush(), opts.onProgress)
  }

  /**
   * After an unclean shutdown: recomputes the parity of every stripe the intent log found dirty,
   * and only those; then flushes, which lets the log clear them. Returns the stripes rewritten.
   */
  async resync(): Promise<number> {
    if (this.#closed) throw closedError('resync')
    if ((this.#intent?.dirtyAtOpen() ?? []).length === 0) return 0
    // Refused rather than tried: a member's read-only error would otherwise mark it failed.
    if (this.readOnly) throw readOnlyError(0)
    this.#members.refuseIfFailed('resync')
    return resyncDirty(this.#core, () => this.flush())
  }
}
