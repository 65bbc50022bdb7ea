import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { LayerKind } from './layer.ts'
import { DEFAULT_UNIT, VolumeError } from './layer.ts'
import { checkMultiple, checkSectors, largestSector } from './layer-checks.ts'
import { SplitLayer } from './split-layer.ts'
import type { MapFn } from './split-io.ts'

export interface StripeOptions {
  /** Bytes per member before moving to the next (md's chunk); a multiple of the sector size. */
  unit?: number
}

/**
 * RAID-0: `unit`-byte units dealt round-robin over the members, so a large I/O keeps every
 * member busy at once. Unit u of the layer is unit floor(u / n) of member u mod n. Each member
 * contributes the same whole number of units (the smallest member's), the rest of larger
 * members is unused.
 */
export class StripeDevice extends SplitLayer {
  readonly kind: LayerKind = 'stripe'
  readonly unit: number

  constructor(members: readonly BlockDevice[], options: StripeOptions = {}) {
    if (members.length < 2) throw new VolumeError('VOLUME_LAYOUT', `a stripe needs at least two members, got ${members.length}`)
    const unit = options.unit ?? DEFAULT_UNIT
    const sector = largestSector(members)
    checkSectors(members, sector, 'stripe')
    checkMultiple(unit, sector, 'stripe unit')
    const units = Math.floor(Math.min(...members.map((m) => m.size)) / unit)
    if (units < 1) throw new VolumeError('VOLUME_LAYOUT', `stripe unit ${unit} is larger than the smallest member`)
    super(members, members.length * units * unit, sector)
    this.unit = unit
  }

  protected map: MapFn = (offset) => {
    const n = this.members.length
    const u = Math.floor(offset / this.unit)
    const within = offset - u * this.unit
    return { member: u % n, memberOffset: Math.floor(u / n) * this.unit + within, run: this.unit - within }
  }
}
