import type { RebuildOptions } from '../layer.ts'
import { dataMember, parityMember, xorOf } from '../parity.ts'
import type { Raid5Core } from './core.ts'
import { rowBytes } from './core.ts'

export interface ScrubResult {
  readonly stripes: number
  readonly mismatches: number
  readonly repaired: number
}

/**
 * Recomputes every stripe's parity from its data and counts the stripes whose stored parity
 * differs; with `repair`, rewrites those parities, then `flush`es (the device's flush: members,
 * then the intent log). The caller checks that every member is in service.
 */
export async function scrubStripes(
  core: Raid5Core,
  repair: boolean,
  flush: () => Promise<void>,
  onProgress: RebuildOptions['onProgress'],
): Promise<ScrubResult> {
  let mismatches = 0
  let repaired = 0
  for (let s = 0; s < core.stripes; s++) {
    const fixed = await core.locks.with(s, () => scrubStripe(core, s, repair))
    if (fixed !== 'match') mismatches++
    if (fixed === 'repaired') repaired++
    onProgress?.((s + 1) * rowBytes(core), (core.n - 1) * core.stripes * core.unit)
  }
  if (repaired > 0) await flush()
  return { stripes: core.stripes, mismatches, repaired }
}

async function scrubStripe(core: Raid5Core, stripe: number, repair: boolean): Promise<'match' | 'mismatch' | 'repaired'> {
  const { members, n, unit } = core
  const p = parityMember(stripe, n)
  const units = await Promise.all(Array.from({ length: n }, (_, i) => members.read(i, stripe * unit, unit)))
  const computed = Buffer.allocUnsafeSlow(unit)
  xorOf(computed, units.filter((_, i) => i !== p))
  if (computed.equals(units[p] ?? Buffer.alloc(0))) return 'match'
  members.emit('scrub-mismatch', `stripe ${stripe}: parity on member ${p} disagrees with the data`, p, stripe * unit, unit)
  if (!repair) return 'mismatch'
  await core.generations.run(async (generation) => {
    const row = rowBytes(core)
    await core.intent?.mark(stripe * row, row, generation)
    await members.write(p, stripe * unit, computed)
  })
  return 'repaired'
}

/**
 * After an unclean shutdown: recomputes the parity of every stripe the intent log found dirty,
 * and only those; then flushes, which lets the log clear them. Returns the stripes rewritten.
 * The caller checks that the volume is open, writable and not failed.
 */
export async function resyncDirty(core: Raid5Core, flush: () => Promise<void>): Promise<number> {
  const { members } = core
  const dirty = core.intent?.dirtyAtOpen() ?? []
  if (dirty.length === 0) return 0
  const row = rowBytes(core)
  const stripes = new Set<number>()
  for (const r of dirty) {
    const last = Math.min(core.stripes - 1, Math.floor((r.offset + r.length - 1) / row))
    for (let s = Math.floor(r.offset / row); s <= last; s++) stripes.add(s)
  }
  members.emit('resync-started', `resync of ${stripes.size} stripes in ${dirty.length} dirty regions`)
  let rewritten = 0
  let unsure = 0
  await core.generations.run(async () => {
    for (const s of stripes) {
      const outcome = await core.locks.with(s, () => resyncStripe(core, s))
      if (outcome === 'rewritten') rewritten++
      else if (outcome === 'data-missing') unsure++
    }
  })
  if (unsure === 0) {
    await flush()
  } else {
    // A dirty stripe missing a data unit cannot be made consistent (md refuses to start such an
    // array): flush what was rewritten but keep the bits, so the doubt survives another restart.
    await members.onLive((dev) => dev.flush())
    members.refuseIfFailed('resync')
  }
  members.emit('resync-done', `resync rewrote the parity of ${rewritten} stripes; ${unsure} dirty stripes miss a data unit and stay dirty`)
  return rewritten
}

/**
 * Rewrites the parity of `stripe` from its data. With the parity member out of service there is
 * nothing to rewrite; with a data member out, nothing to rewrite it from ('data-missing').
 */
async function resyncStripe(core: Raid5Core, stripe: number): Promise<'rewritten' | 'parity-missing' | 'data-missing'> {
  const { members, n, unit } = core
  const p = parityMember(stripe, n)
  if (!members.readable(p, stripe)) return 'parity-missing'
  const data: Buffer[] = []
  for (let d = 0; d < n - 1; d++) {
    const member = dataMember(stripe, d, n)
    if (!members.readable(member, stripe)) return 'data-missing'
    data.push(await members.read(member, stripe * unit, unit))
  }
  const parity = Buffer.allocUnsafeSlow(unit)
  xorOf(parity, data)
  await members.write(p, stripe * unit, parity)
  return 'rewritten'
}
