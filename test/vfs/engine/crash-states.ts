/*
 * The crash checker's enumeration of crash states (crash-check.ts judges them): per flush
 * boundary, in order, none and all of the pending writes, each single one, seeded random subsets
 * and torn writes.
 */
import { sectorsTouched } from '../../../vfs/engine/blockdev/recording-device.ts'
import type { CrashState, RecordedWrite, RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import { rng } from './engine-helpers.ts'

/**
 * The primary superblock (1024 bytes at 1024) is two 512-byte sectors, and ext4 writes it in place
 * (needs_recovery at mount, cleared at unmount): a torn one fails its checksum and neither we nor
 * the kernel mount it (e2fsck falls back to the backup in group 1). That is ext4's format, not
 * something the engine can change, so the checker does not tear it; every other write it does.
 */
function isPrimarySuperblock(w: RecordedWrite): boolean {
  return w.offset <= 1024 && w.offset + w.data.length >= 2048 && w.data.length <= 4096
}

/** Every crash state, in order: per boundary all, none, each single, random subsets, torn. */
export function* crashStates(rec: RecordingDevice, seed: number, subsets: number, torn: number): Generator<CrashState> {
  const r = rng(seed ^ 0x5eed)
  for (let k = 0; k <= rec.flushes.length; k++) {
    const pending = rec.pending(k)
    const n = pending.length
    const all = Array.from({ length: n }, (_, i) => i)
    yield { flushes: k, apply: [] }
    if (n === 0) continue
    yield { flushes: k, apply: all }
    if (n > 1) for (let i = 0; i < n; i++) yield { flushes: k, apply: [i] }
    for (let s = 0; s < subsets && n > 2; s++) yield { flushes: k, apply: all.filter(() => r() < 0.5) }
    for (let s = 0; s < torn; s++) {
      const candidates = all.filter((i) => sectorsTouched(pending[i]!, rec.sectorSize) > 1 && !isPrimarySuperblock(pending[i]!))
      if (candidates.length === 0) break
      const w = candidates[Math.floor(r() * candidates.length)]!
      const sectors = 1 + Math.floor(r() * (sectorsTouched(pending[w]!, rec.sectorSize) - 1))
      // Everything before the torn write in completion order is there; everything after may or may not be.
      yield { flushes: k, apply: all.filter((i) => i < w || (i > w && r() < 0.5)), torn: { write: w, sectors } }
    }
  }
}
