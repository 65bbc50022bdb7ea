import { createHash } from 'node:crypto'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import type { Disk } from '../../../vfs/volume/member-io.ts'

/** Data area of every test disk: 64 KiB after the reserved area. */
export const DATA = 64 * 1024
export const DISK_SIZE = MEMBER_RESERVED + DATA

/** Deterministic ids for createVolume, so two runs build the same bytes. */
export function seededRandom(seed: string): (bytes: number) => Buffer {
  let n = 0
  return (bytes) => createHash('sha256').update(`${seed}:${n++}`).digest().subarray(0, bytes)
}

/** Disks in memory named `${prefix}0`, `${prefix}1`, ... */
export function memoryDisks(prefix: string, count: number, size = DISK_SIZE): (Disk & { readonly dev: MemoryDevice })[] {
  return Array.from({ length: count }, (_, i) => ({ path: `${prefix}${i}`, dev: new MemoryDevice(size) }))
}

/** Writes `label` at the start of a disk's data area, where describeTree looks for it. */
export async function label(dev: BlockDevice, text: string): Promise<void> {
  await dev.write(MEMBER_RESERVED, Buffer.from(text.padEnd(16, '\0'), 'latin1'))
}

export async function labelAll(disks: readonly Disk[]): Promise<void> {
  for (const d of disks) await label(d.dev, d.path)
}

/** The shared seeded generator (mulberry32), under the name this file's tests use. */
export { prng as rng } from '../../helpers/prng.ts'

export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const a = out[i]!
    out[i] = out[j]!
    out[j] = a
  }
  return out
}
