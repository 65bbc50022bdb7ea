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
  const reads: Promise<void>[] = []
  for (let done = 0; done < target.length; ) {
    const place = locate(offset + done, core.n, core.unit)
    const within = place.memberOffset - place.stripe * core.unit
    const n = Math.min(core.unit - within, target.length - done)
    reads.push(readPiece(core, place.stripe, place.member, place.memberOffset, target.subarray(done, done + n)))
    done += n
  }
  await settleAll(reads)
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
