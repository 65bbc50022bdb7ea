/*
 * The RAID geometry `tsnfs volume mkfs` records for the engine's allocator (s_raid_stride /
 * s_raid_stripe_width, vfs/engine/mkfs/raid.ts), read from the volume's layout: file data then
 * starts on row boundaries, so sequential writes cover whole RAID-5 rows and read nothing back.
 */
import type { RaidLayout } from '../vfs/engine/mkfs/raid.ts'
import type { LayoutNode } from '../vfs/volume/config.ts'
import { DEFAULT_UNIT } from '../vfs/volume/layer.ts'

/**
 * RAID-5 of n: its unit and n − 1 data units a row; stripe of n: n. A mirror passes its legs'
 * offsets through unchanged, so it has its first leg's geometry; a partition has its child's
 * when it starts on a row boundary. A span or a plain disk has none.
 */
export function raidLayoutOf(node: LayoutNode): RaidLayout | undefined {
  switch (node.kind) {
    case 'raid5':
      return { unit: node.unit ?? DEFAULT_UNIT, dataUnits: node.children.length - 1 }
    case 'stripe':
      return { unit: node.unit ?? DEFAULT_UNIT, dataUnits: node.children.length }
    case 'mirror': {
      const [leg] = node.children
      return leg === undefined ? undefined : raidLayoutOf(leg)
    }
    case 'partition': {
      const inner = raidLayoutOf(node.child)
      return inner !== undefined && node.offset % (inner.unit * inner.dataUnits) === 0 ? inner : undefined
    }
    case 'span':
    case 'disk':
      return undefined
  }
}
