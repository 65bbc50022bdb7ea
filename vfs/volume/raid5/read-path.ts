import { VolumeError } from '../layer.ts'
import { locate, xorOf } from '../parity.ts'
import type { Raid5Core } from './core.ts'
import { errorMessage, settleAll } from './members.ts'

/**
 * Reads [offset, offset + target.length) of the volume into `target` (checked by the caller):
 * each unit from its member, or, where that member is out of service or its read fails, rebuilt
 * from the others under the stripe's lock.
 */
export async function readStripes(core: Raid5Core, offset: number, target: Uint8Array): Promise<void> {
  const pieces: Piece[] = []
  for (let done = 0; done < target.length; ) {
    const place = locate(offset + done, core.n, core.unit)
    const within = place.memberOffset - place.stripe * core.unit
    const n = Math.min(core.unit - within, target.length - done)
    pieces.push({ stripe: place.stripe, member: place.member, memberOffset: place.memberOffset, target: target.subarray(done, done + n) })
    done += n
  }
  if (pieces.length >= 2 * core.n && (await readPerMember(core, pieces))) return
  await settleAll(pieces.map((p) => readPiece(core, p.stripe, p.member, p.memberOffset, p.target)))
}

interface Piece {
  readonly stripe: number
  readonly member: number
  readonly memberOffset: number
  readonly target: Uint8Array
}

/**
 * A read of many units with every member in service: one readv per member of the span its pieces
 * cover, the parity units between them read into a scratch unit. Unit by unit, a 1 MiB read was
 * 16 reads of 64 KiB, each small enough to be copied on this thread (RWF_NOWAIT), where a single
 * disk's 1 MiB read is copied on the thread pool. False (nothing decided) where a member has no
 * readv, one is out of service, or a read fails: the caller then reads unit by unit, which marks
 * a failed member and reconstructs.
 */
async function readPerMember(core: Raid5Core, pieces: readonly Piece[]): Promise<boolean> {
  const { members, unit } = core
  if (members.degraded || members.devices.some((d) => d.readv === undefined)) return false
  const byMember = new Map<number, Piece[]>()
  for (const p of pieces) {
    const list = byMember.get(p.member) ?? []
    list.push(p)
    byMember.set(p.member, list)
  }
  // A volume read walks each member upwards, so its pieces are in member order; checked anyway.
  for (const mine of byMember.values()) if (mine.some((p, i) => i > 0 && p.memberOffset < (mine[i - 1]?.memberOffset ?? 0) + (mine[i - 1]?.target.length ?? 0))) return false
  const scratch: Buffer[] = []
  try {
    const reads = [...byMember].map(([member, mine]) => {
      const iov: Uint8Array[] = []
      let scratchUnit: Buffer | undefined
      let at = mine[0]?.memberOffset ?? 0
      for (const p of mine) {
        for (let gap = p.memberOffset - at; gap > 0; ) {
          scratchUnit ??= core.runBuffers.take(unit)
          const len = Math.min(gap, unit)
          iov.push(scratchUnit.subarray(0, len))
          gap -= len
        }
        iov.push(p.target)
        at = p.memberOffset + p.target.length
      }
      if (scratchUnit !== undefined) scratch.push(scratchUnit)
      const dev = members.dev(member)
      return dev.readv === undefined ? Promise.reject(new Error('no readv')) : dev.readv(mine[0]?.memberOffset ?? 0, iov)
    })
    const results = await Promise.allSettled(reads)
    return results.every((r) => r.status === 'fulfilled')
  } finally {
    core.runBuffers.give(scratch)
  }
}

async function readPiece(core: Raid5Core, stripe: number, member: number, memberOffset: number, target: Uint8Array): Promise<void> {
  if (core.members.readable(member, stripe)) {
    try {
      await core.members.dev(member).readInto(memberOffset, target)
      return
    } catch (err) {
      core.members.markFailed(member, errorMessage(err))
    }
  }
  await core.locks.with(stripe, () => reconstruct(core, stripe, member, memberOffset, target))
}

/**
 * target = the XOR of every other member over the same range: the lost member's bytes. `stripe`
 * is the last stripe the range touches (readable there means readable at every earlier one).
 */
export async function reconstruct(core: Raid5Core, stripe: number, lost: number, memberOffset: number, target: Uint8Array): Promise<void> {
  const { members } = core
  const others = Array.from({ length: core.n }, (_, i) => i).filter((i) => i !== lost)
  const gone = others.filter((i) => !members.readable(i, stripe))
  if (gone.length > 0) {
    throw new VolumeError('VOLUME_FAILED', `member ${lost}'s bytes at ${memberOffset} cannot be rebuilt: member ${gone.join(', ')} is out of service too`)
  }
  // Read into kept buffers (raid5-buffers.ts): a rebuild reads a step of every other member each
  // turn, and fresh buffers cost their page faults. Given back only once every read has settled.
  const parts = others.map(() => core.runBuffers.take(target.length))
  const reads = await Promise.allSettled(others.map((i, k) => members.readInto(i, memberOffset, parts[k] ?? Buffer.alloc(0))))
  try {
    const failed = reads.find((r) => r.status === 'rejected')
    if (failed !== undefined) {
      const err: unknown = failed.reason
      throw new VolumeError('VOLUME_FAILED', `member ${lost}'s bytes at ${memberOffset} cannot be rebuilt: ${errorMessage(err)}`, { cause: err })
    }
    xorOf(target, parts)
  } finally {
    core.runBuffers.give(parts)
  }
}
