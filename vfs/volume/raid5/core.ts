import type { IntentLog } from '../layer.ts'
import type { RunBuffers } from '../raid5-buffers.ts'
import type { StripeLocks } from '../stripe-lock.ts'
import type { WriteGenerations } from '../write-generations.ts'
import type { Raid5Members } from './members.ts'

/**
 * What the parts of a RAID-5 (write path, reads, rebuild, scrub and resync) share: the geometry,
 * the members, the per-stripe locks, the intent log and its write generations. Raid5Device owns
 * it; the parts are functions over it, each in the file named for its concern.
 */
export interface Raid5Core {
  /** Members (≥ 3). */
  readonly n: number
  /** Bytes per unit (md's chunk). */
  readonly unit: number
  /** Stripes (units per member) the volume uses. */
  readonly stripes: number
  readonly members: Raid5Members
  readonly locks: StripeLocks
  readonly intent: IntentLog | undefined
  readonly generations: WriteGenerations
  /** A rebuild step's reads and units (1 MiB each by default), the parity of whole-stripe writes, and a few degraded reads beside (at most 16 MiB kept). */
  readonly runBuffers: RunBuffers
}

/** Bytes of data in one stripe (a row across the members). */
export function rowBytes(core: Raid5Core): number {
  return (core.n - 1) * core.unit
}

/**
 * Runs `fn` holding the locks of `count` stripes from `first`, taken in ascending order: every
 * other holder takes one stripe lock at a time, so the order alone rules out a deadlock.
 */
export function withStripes<T>(core: Raid5Core, first: number, count: number, fn: () => Promise<T>): Promise<T> {
  if (count <= 0) return fn()
  return core.locks.with(first, () => withStripes(core, first + 1, count - 1, fn))
}
