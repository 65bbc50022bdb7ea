/*
 * A bench-only member wrapper for bench/raid5-parts.ts: it lets through every write except the
 * bytes of the member's parity units, so a RAID-5 over such members computes parity as usual but
 * writes only its data. The difference to a plain RAID-5 is what writing the parity costs. The
 * volume it makes holds wrong parity: never anything but a bench.
 */
import { PassThroughDevice } from '../vfs/engine/blockdev/pass-through.ts'
import type { BlockDevice } from '../vfs/engine/blockdev/block-device.ts'
import { parityMember } from '../vfs/volume/parity.ts'

export interface ParityPlace {
  /** This member's index in the RAID-5. */
  readonly index: number
  readonly members: number
  readonly unit: number
  /** Where the RAID-5's member area starts on this device (below it: superblocks and bitmap). */
  readonly dataOffset: number
}

export class ParityDropping extends PassThroughDevice {
  readonly #p: ParityPlace

  constructor(inner: BlockDevice, place: ParityPlace) {
    super(inner)
    this.#p = place
  }

  /** The member's data units of [offset, offset + length), as contiguous runs, written at once. */
  override async write(offset: number, data: Uint8Array): Promise<void> {
    const { index, members, unit, dataOffset } = this.#p
    if (offset < dataOffset) return this.inner.write(offset, data)
    const runs: Promise<void>[] = []
    let runStart = -1
    const end = offset + data.length
    for (let at = offset; at < end; ) {
      const stripe = Math.floor((at - dataOffset) / unit)
      const next = Math.min(end, dataOffset + (stripe + 1) * unit)
      const parity = parityMember(stripe, members) === index
      if (!parity && runStart < 0) runStart = at
      if (parity && runStart >= 0) {
        runs.push(this.inner.write(runStart, data.subarray(runStart - offset, at - offset)))
        runStart = -1
      }
      at = next
    }
    if (runStart >= 0) runs.push(this.inner.write(runStart, data.subarray(runStart - offset)))
    await Promise.all(runs)
  }

  /** As write, for the RAID-5's gathered runs: the kept pieces go on as writev where the device has it. */
  async writev(offset: number, chunks: readonly Uint8Array[]): Promise<void> {
    const { index, members, unit, dataOffset } = this.#p
    const groups: { at: number; pieces: Uint8Array[] }[] = []
    let pos = offset
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.length; ) {
        const at = pos + done
        const stripe = Math.floor((at - dataOffset) / unit)
        const n = at < dataOffset ? Math.min(chunk.length - done, dataOffset - at) : Math.min(chunk.length - done, dataOffset + (stripe + 1) * unit - at)
        if (at < dataOffset || parityMember(stripe, members) !== index) {
          const last = groups.at(-1)
          const piece = chunk.subarray(done, done + n)
          if (last !== undefined && last.at + last.pieces.reduce((s, p) => s + p.length, 0) === at) last.pieces.push(piece)
          else groups.push({ at, pieces: [piece] })
        }
        done += n
      }
      pos += chunk.length
    }
    const inner = this.inner
    await Promise.all(groups.map((g) => (inner.writev === undefined ? inner.write(g.at, Buffer.concat(g.pieces)) : inner.writev(g.at, g.pieces))))
  }
}
