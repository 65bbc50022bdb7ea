import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { VolumeError } from './layer.ts'

/**
 * Checks every layer shares. Ownership rule, the same for every layer: a layer owns its members,
 * so closing the top of a tree closes every device in it, once, and a caller never has to walk
 * the tree. The one exception is a mirror's `replace`, which closes the leg it drops.
 */

/** The sector size of a layer over `members`: the largest, so a write atomic on the layer is atomic on each member it maps to. */
export function largestSector(members: readonly BlockDevice[]): number {
  return Math.max(...members.map((m) => m.sectorSize))
}

/** VOLUME_LAYOUT unless `value` is a positive safe integer multiple of `unit`. */
export function checkMultiple(value: number, unit: number, what: string): void {
  if (!Number.isSafeInteger(value) || value <= 0 || value % unit !== 0) {
    throw new VolumeError('VOLUME_LAYOUT', `${what} ${value} is not a positive multiple of ${unit}`)
  }
}

/** VOLUME_LAYOUT unless every member's sector size divides `sectorSize` (so the layer's sectors never split a member's). */
export function checkSectors(members: readonly BlockDevice[], sectorSize: number, kind: string): void {
  for (const [i, m] of members.entries()) {
    if (sectorSize % m.sectorSize !== 0) {
      throw new VolumeError('VOLUME_LAYOUT', `${kind} member ${i}: sector size ${m.sectorSize} does not divide ${sectorSize}`)
    }
  }
}

/** Closes every member even when some fail, then rejects with the first failure. */
export async function closeMembers(members: readonly BlockDevice[]): Promise<void> {
  const results = await Promise.allSettled(members.map((m) => m.close()))
  for (const r of results) if (r.status === 'rejected') throw r.reason
}
