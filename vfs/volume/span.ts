import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { LayerKind } from './layer.ts'
import { VolumeError } from './layer.ts'
import { checkMultiple, checkSectors, largestSector } from './layer-checks.ts'
import { SplitLayer } from './split-layer.ts'
import type { MapFn } from './split-io.ts'

/**
 * Members one after another (NT's volume set, md's linear): the simplest way to make one big
 * device of several small ones. Every member must be whole sectors of the span's (largest)
 * sector size, so no span sector straddles two members and a torn write stays sector-shaped.
 */
export class SpanDevice extends SplitLayer {
  readonly kind: LayerKind = 'span'
  /** Layer offset where each member starts, ascending. */
  readonly #starts: readonly number[]

  constructor(members: readonly BlockDevice[]) {
    if (members.length < 1) throw new VolumeError('VOLUME_LAYOUT', 'a span needs at least one member')
    const sector = largestSector(members)
    checkSectors(members, sector, 'span')
    const starts: number[] = []
    let size = 0
    for (const [i, m] of members.entries()) {
      checkMultiple(m.size, sector, `span member ${i} size`)
      starts.push(size)
      size += m.size
    }
    if (!Number.isSafeInteger(size)) throw new VolumeError('VOLUME_LAYOUT', `span of ${size} bytes is beyond a safe integer`)
    super(members, size, sector)
    this.#starts = starts
  }

  protected map: MapFn = (offset) => {
    // Binary search: the last member starting at or before offset.
    let lo = 0
    let hi = this.#starts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if ((this.#starts[mid] ?? 0) <= offset) lo = mid
      else hi = mid - 1
    }
    const start = this.#starts[lo] ?? 0
    const member = this.members[lo] as BlockDevice
    return { member: lo, memberOffset: offset - start, run: member.size - (offset - start) }
  }
}
