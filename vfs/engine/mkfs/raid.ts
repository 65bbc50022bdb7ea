/*
 * The RAID geometry mkfs records in the superblock (mke2fs -E stride=,stripe_width=): the unit
 * of the volume under the file system and its data row, in blocks. The allocator aligns large
 * file-data runs to the row, so a sequential write covers whole rows and a RAID-5 computes its
 * parity from the new data alone instead of reading the old (read-modify-write).
 */
import { MkfsError } from './errors.ts'

/** The volume under the file system, as its caller knows it (in bytes, not yet in blocks). */
export interface RaidLayout {
  /** The stripe unit (md's chunk) in bytes. */
  unit: number
  /** Units of data in a row: n for a stripe of n, n − 1 for a RAID-5 of n; 1 when only the unit matters. */
  dataUnits: number
}

/** s_raid_stride and s_raid_stripe_width, in blocks. */
export interface RaidFields {
  raidStride: number
  raidStripeWidth: number
}

/** s_raid_stride is 16 bits wide on disk. */
const MAX_STRIDE = 0xffff
/** s_raid_stripe_width is 32 bits wide. */
const MAX_WIDTH = 0xffffffff

/** The superblock's fields for `layout` on blocks of `blockSize` bytes; none (0, 0) without a layout. */
export function raidFields(layout: RaidLayout | undefined, blockSize: number): RaidFields {
  if (layout === undefined) return { raidStride: 0, raidStripeWidth: 0 }
  const { unit, dataUnits } = layout
  if (!Number.isSafeInteger(unit) || unit < blockSize || unit % blockSize !== 0) {
    throw new MkfsError('MKFS_BAD_OPTION', `a RAID unit of ${unit} bytes is not a whole number of ${blockSize}-byte blocks`)
  }
  if (!Number.isSafeInteger(dataUnits) || dataUnits < 1) throw new MkfsError('MKFS_BAD_OPTION', `a RAID row of ${dataUnits} data units`)
  const stride = unit / blockSize
  const width = stride * dataUnits
  if (stride > MAX_STRIDE || width > MAX_WIDTH) {
    throw new MkfsError('MKFS_BAD_OPTION', `a RAID stride of ${stride} blocks and row of ${width} do not fit the superblock (at most ${MAX_STRIDE} and ${MAX_WIDTH})`)
  }
  return { raidStride: stride, raidStripeWidth: width }
}
