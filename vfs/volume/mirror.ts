import { checkRange, closedError, readOnlyError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { IntentLog, Layer, LayerKind, LayerStatus, RebuildOptions, RedundantOptions } from './layer.ts'
import { VolumeError } from './layer.ts'
import { checkSectors, closeMembers, largestSector } from './layer-checks.ts'
import { copyRegions, rebuildLeg, scrubLegs } from './mirror-copy.ts'
import type { ScrubOptions, ScrubResult } from './mirror-copy.ts'
import { MirrorLegs } from './mirror-legs.ts'
import { clipRegions } from './paced-steps.ts'
import { WriteGenerations } from './write-generations.ts'

/** Options of a leg's replace. */
export interface LegReplaceOptions extends RebuildOptions {
  /**
   * Leave the old leg's device open: a new leg built over some of the same disks (a stripe leg
   * whose one disk was replaced) would lose them to the old one's close. The caller closes them.
   */
  keepOld?: boolean
}

/**
 * RAID-1: every leg holds the whole volume. Writes go to every live leg at once and succeed while
 * one whole (ok) leg took them; a leg whose write, flush or repair fails is dropped (failed) and
 * the volume runs degraded. Reads go round-robin over the legs that can serve them; a read error
 * is served from another leg and repaired. Silent corruption is invisible to reads (a mirror has
 * no checksum to know which copy is right): only scrub finds it, by comparing the legs.
 *
 * It owns its legs and its intent log: close() closes the log (which may write its last clears)
 * and then every leg; replace() closes the leg it drops.
 */
export class MirrorDevice implements Layer {
  readonly kind: LayerKind = 'mirror'
  readonly size: number
  readonly sectorSize: number
  readonly #legs: MirrorLegs
  readonly #intent: IntentLog | undefined
  /** Numbers every write for the intent log, so a flush settles exactly the regions it made durable. */
  readonly #generations = new WriteGenerations()
  #closed = false

  constructor(legs: readonly BlockDevice[], opts: RedundantOptions = {}) {
    if (legs.length < 2) throw new VolumeError('VOLUME_LAYOUT', `a mirror needs at least two legs, got ${legs.length}`)
    const sector = largestSector(legs)
    checkSectors(legs, sector, 'mirror')
    const size = Math.floor(Math.min(...legs.map((l) => l.size)) / sector) * sector
    if (size <= 0) throw new VolumeError('VOLUME_LAYOUT', `mirror legs hold no whole ${sector}-byte sector`)
    this.size = size
    this.sectorSize = sector
    this.#legs = new MirrorLegs(legs, opts.onEvent)
    this.#intent = opts.intent
  }

  get members(): readonly BlockDevice[] {
    return this.#legs.legs.map((l) => l.dev)
  }

  get readOnly(): boolean {
    return this.#legs.legs.some((l) => l.dev.readOnly)
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.#check('read', offset, length) // before allocating: length comes from the caller
    const out = Buffer.alloc(length)
    await this.readInto(offset, out)
    return out
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.#check('read', offset, target.length)
    this.#legs.clients.touch()
    await this.#legs.readInto(offset, target, { locked: false })
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write', offset, data.length)
    if (this.readOnly) throw readOnlyError(offset)
    this.#refuseIfFailed(`write at ${offset}`)
    if (data.length === 0) return
    this.#legs.clients.touch()
    await this.#generations.run(async (generation) => {
      // The intent must be durable before any leg can differ from another.
      await this.#intent?.mark(offset, data.length, generation)
      await this.#legs.lock.with(offset, data.length, false, () => this.#legs.eachLive((dev) => dev.write(offset, data)))
    })
    // Closed meanwhile: the legs' errors were not counted as failures, so say it here.
    if (this.#legs.closed) throw closedError('write')
    this.#refuseIfFailed(`write at ${offset}`)
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError('flush')
    this.#refuseIfFailed('flush')
    // Only writes complete before the flush began are surely durable on every leg after it: the
    // regions they alone marked clear; a region a running or later write marked stays dirty.
    const before = this.#generations.horizon()
    await this.#legs.eachLive((dev) => dev.flush())
    if (this.#legs.closed) throw closedError('flush')
    this.#refuseIfFailed('flush')
    await this.#intent?.settle(before)
  }

  /** As Raid5Device's: a clean close leaves no bit for the next open to resync (best effort). */
  async #finalSettle(): Promise<void> {
    const intent = this.#intent
    // Read-only: the bits found dirty at open were not resynced; they stay for a read-write open.
    if (intent?.settleFinal === undefined || this.#legs.closed || this.readOnly) return
    try {
      const before = this.#generations.horizon()
      await this.#legs.eachLive((dev) => dev.flush())
      this.#refuseIfFailed('flush')
      await intent.settleFinal(before)
    } catch {
      // the bits stay; the next open resyncs those regions
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    await this.#finalSettle()
    this.#closed = true
    this.#legs.shutdown()
    try {
      await this.#intent?.close()
    } finally {
      await closeMembers(this.members)
    }
  }

  /** Rebuild steps that gave way to client I/O (see ClientTurns), since the mirror was built. */
  get gaveWay(): number {
    return this.#legs.clients.gaveWay
  }

  status(): LayerStatus {
    const members = this.#legs.status()
    return { kind: this.kind, size: this.size, degraded: members.some((m) => m.state !== 'ok'), failed: this.#legs.failed, members }
  }

  /** Marks leg `index` failed by hand (`volume fail`): no more reads or writes go to it. */
  fail(index: number): void {
    const leg = this.#leg(index)
    this.#legs.fail(index, leg.dev, new Error('failed by hand'))
  }

  /**
   * Puts `dev` in place of leg `index` (closing the old device) and copies the volume onto it
   * from the ok legs while clients keep reading and writing; resolves once it is whole, flushed
   * and ok. Client writes reach the new leg at once, and each copy step holds its range
   * exclusively, so the copy never overwrites them with older bytes. With `opts.resumeFrom` the
   * copy continues a rebuild a crash cut short (see RebuildOptions); resolves with bytes copied.
   */
  async replace(index: number, dev: BlockDevice, opts: LegReplaceOptions = {}): Promise<number> {
    if (this.#closed) throw closedError('replace')
    const old = this.#leg(index)
    if (dev.size < this.size) throw new VolumeError('VOLUME_LAYOUT', `new leg of ${dev.size} bytes is smaller than the mirror (${this.size})`)
    if (this.sectorSize % dev.sectorSize !== 0) throw new VolumeError('VOLUME_LAYOUT', `new leg's sector size ${dev.sectorSize} does not divide ${this.sectorSize}`)
    if (dev.readOnly) throw new VolumeError('VOLUME_MEMBER', 'new leg is read-only')
    if (this.members.includes(dev)) throw new VolumeError('VOLUME_MEMBER', 'new leg is already a leg of this mirror')
    if (this.#legs.ok().every((i) => i === index)) throw new VolumeError('VOLUME_FAILED', `no ok leg besides ${index} to rebuild from`)
    const from = opts.resumeFrom ?? 0
    if (!Number.isSafeInteger(from) || from < 0 || from > this.size || from % this.sectorSize !== 0) {
      throw new VolumeError('VOLUME_LAYOUT', `resume from ${from}: not a sector boundary within the mirror's ${this.size} bytes`)
    }
    this.#legs.legs[index] = { dev, state: 'rebuilding', rebuilt: from }
    try {
      if (opts.keepOld !== true) await old.dev.close()
    } catch {
      // The dropped leg is often a dead disk: its close failing changes nothing for the mirror.
    }
    return rebuildLeg(this.#legs, index, dev, this.size, opts)
  }

  /**
   * After an unclean shutdown: copies the regions the intent log found dirty from the first ok
   * leg to the others, then flushes (which settles the log). Nothing to do without a log.
   * Resolves with the bytes copied.
   */
  async resync(opts: RebuildOptions = {}): Promise<number> {
    if (this.#closed) throw closedError('resync')
    this.#refuseIfFailed('resync')
    const regions = clipRegions(this.#intent?.dirtyAtOpen() ?? [], this.size)
    const total = regions.reduce((sum, r) => sum + r.length, 0)
    this.#legs.emit({ kind: 'resync-started', offset: 0, length: this.size, message: `resync of ${regions.length} dirty regions, ${total} bytes` })
    const copied = await copyRegions(this.#legs, regions, opts)
    await this.flush()
    this.#legs.emit({ kind: 'resync-done', offset: 0, length: this.size, message: `resync copied ${copied} bytes` })
    return copied
  }

  /** Compares every leg with the first ok one; with `repair`, rewrites the differences from it. */
  async scrub(opts: ScrubOptions = {}): Promise<ScrubResult> {
    if (this.#closed) throw closedError('scrub')
    this.#refuseIfFailed('scrub')
    const result = await scrubLegs(this.#legs, this.size, opts)
    if (opts.repair === true && result.repaired > 0) await this.flush()
    return result
  }

  #leg(index: number): { dev: BlockDevice } {
    const leg = Number.isSafeInteger(index) ? this.#legs.legs[index] : undefined
    if (leg === undefined) throw new VolumeError('VOLUME_MEMBER', `mirror has no leg ${index} (legs 0 … ${this.#legs.legs.length - 1})`)
    return leg
  }

  #check(what: string, offset: number, length: number): void {
    if (this.#closed) throw closedError(what)
    checkRange(this.size, offset, length, what)
  }

  #refuseIfFailed(what: string): void {
    if (this.#legs.failed) throw new VolumeError('VOLUME_FAILED', `${what}: every leg has failed`)
  }
}
