import { dataIndexOn, dataMember, parityMember, xorInto, xorOf } from '../parity.ts'
import type { Raid5Core } from './core.ts'
import { withStripes } from './core.ts'
import type { Piece } from './geometry.ts'
import { planWrite } from './geometry.ts'
import { MemberReadError, settleAll } from './members.ts'

/**
 * Writes `data` at volume byte `offset` (checked by the caller, which also marks the intent log):
 * the whole stripes in a row as one write per member, every other stripe under its lock as a
 * partial stripe update.
 */
export async function writeStripes(core: Raid5Core, offset: number, data: Uint8Array): Promise<void> {
  const plan = planWrite(offset, data, core.n, core.unit)
  const jobs = [...plan.partial].map(([stripe, pieces]) => core.locks.with(stripe, () => writeStripe(core, stripe, pieces)))
  const run = plan.run
  if (run !== null) jobs.push(withStripes(core, run.first, run.count, () => writeFullRun(core, run.first, run.count, run.data)))
  await settleAll(jobs)
}

/**
 * One stripe's update from `pieces` (the caller holds its lock). A write covering every data unit
 * computes parity from its own bytes and reads nothing; a partial one reads either the old bytes
 * it replaces and the old parity (read-modify-write) or the data units it leaves alone
 * (reconstruct-write), whichever reads fewer bytes. With a member missing, the same update
 * reconstructs the missing unit's old bytes from the others where it needs them.
 */
async function writeStripe(core: Raid5Core, stripe: number, pieces: readonly Piece[]): Promise<void> {
  const { members, n, unit } = core
  for (;;) {
    members.refuseIfFailed('write')
    const plan = await planParity(core, stripe, pieces)
    if (plan === 'retry') continue
    const writes: { member: number; offset: number; data: Uint8Array }[] = pieces.map((p) => ({
      member: dataMember(stripe, p.dataIndex, n),
      offset: stripe * unit + p.start,
      data: p.data,
    }))
    if (plan !== null) writes.push({ member: parityMember(stripe, n), offset: stripe * unit + plan.lo, data: plan.parity })
    // One piece per member at most (each data unit of a stripe lives on its own member).
    const byMember = new Map(writes.map((w) => [w.member, w]))
    await members.each([...byMember.keys()], (dev, member) => {
      const w = byMember.get(member)
      return w === undefined ? Promise.resolve() : dev.write(w.offset, w.data)
    })
    members.refuseIfFailed('write')
    return
  }
}

/**
 * Writes `count` whole stripes from `first` (the caller holds their locks): each member's units
 * of the run, data or parity, as one write per member. As for one whole stripe, nothing is read,
 * so a member out of service changes nothing but who is written: the others then imply its
 * units (and a rebuilding member takes its units at once).
 *
 * The data units go to the members straight from `data` (BlockDevice.writev), the parity from a
 * buffer of its own: gathering every member's units into a buffer of its own first copied all the
 * data once more on the main thread. Where `data` is not 4-byte aligned the XOR would run byte
 * by byte, so there (and for members without writev) the units are copied together after all.
 */
async function writeFullRun(core: Raid5Core, first: number, count: number, data: Uint8Array): Promise<void> {
  const { members, n, unit } = core
  members.refuseIfFailed('write')
  const aligned = (data.byteOffset & 3) === 0
  // Kept, not fresh (raid5-buffers.ts): a fresh parity buffer per run was half the CPU the layer
  // spent per byte (its pages faulted in, then the collector), see bench/README.md, Volumes.
  const parity = core.runBuffers.take(count * unit)
  const chunks: Uint8Array[][] = Array.from({ length: n }, () => [])
  const units: Uint8Array[] = []
  const copies: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const stripe = first + i
    units.length = 0
    for (let d = 0; d < n - 1; d++) {
      const at = (i * (n - 1) + d) * unit
      let src = data.subarray(at, at + unit)
      if (!aligned) {
        // A buffer of its own is 8-byte aligned: the XOR below then runs in 64-bit lanes.
        const copy = core.runBuffers.take(unit)
        copy.set(src)
        copies.push(copy)
        src = copy
      }
      chunks[dataMember(stripe, d, n)]?.push(src)
      units.push(src)
    }
    const p = parity.subarray(i * unit, (i + 1) * unit)
    xorOf(p, units)
    chunks[parityMember(stripe, n)]?.push(p)
  }
  // Every member write has settled here (each never rejects), so nothing reads the parity later.
  await members.each(
    chunks.map((_, member) => member),
    (dev, member) => {
      const mine = chunks[member] ?? []
      return dev.writev === undefined ? dev.write(first * unit, Buffer.concat(mine)) : dev.writev(first * unit, mine)
    },
  )
  core.runBuffers.give([parity, ...copies])
  members.refuseIfFailed('write')
}

/**
 * The new parity over [lo, hi) (the span of the stripe the pieces touch), or null where the
 * parity member is out of service and nothing needs computing; 'retry' when a read failed and
 * marked its member, so the caller plans again with one member fewer.
 */
async function planParity(core: Raid5Core, stripe: number, pieces: readonly Piece[]): Promise<{ lo: number; parity: Uint8Array } | null | 'retry'> {
  const { members, n, unit } = core
  const p = parityMember(stripe, n)
  const full = pieces.length === n - 1 && pieces.every((x) => x.start === 0 && x.end === unit)
  if (full) {
    const parity = Buffer.allocUnsafeSlow(unit)
    xorOf(parity, pieces.map((x) => x.data))
    return { lo: 0, parity }
  }
  const missing = members.missingAt(stripe)
  if (missing === p) return null
  const lo = Math.min(...pieces.map((x) => x.start))
  const hi = Math.max(...pieces.map((x) => x.end))
  const len = hi - lo
  const base = stripe * unit
  const touched = new Map(pieces.map((x) => [x.dataIndex, x]))
  const missingData = missing < 0 ? -1 : dataIndexOn(stripe, missing, n)
  const rmwBytes = len + pieces.reduce((sum, x) => sum + x.end - x.start, 0)
  let rcwBytes = 0
  for (let d = 0; d < n - 1; d++) {
    const x = touched.get(d)
    if (x === undefined || x.start > lo || x.end < hi) rcwBytes += len
  }
  try {
    if (missing < 0 && rcwBytes < rmwBytes) {
      // Reconstruct-write: parity of the new stripe from its data, old where untouched.
      const parity = Buffer.alloc(len)
      await Promise.all(
        Array.from({ length: n - 1 }, async (_, d) => {
          const x = touched.get(d)
          if (x !== undefined && x.start <= lo && x.end >= hi) {
            xorInto(parity, x.data.subarray(lo - x.start, hi - x.start))
            return
          }
          const old = await members.read(dataMember(stripe, d, n), base + lo, len)
          if (x !== undefined) old.set(x.data, x.start - lo)
          xorInto(parity, old)
        }),
      )
      return { lo, parity }
    }
    // Read-modify-write: parity ^= old ^ new over each piece. A missing data member's old bytes
    // are what the old parity and the other old data imply.
    const parity = await members.read(p, base + lo, len)
    let missingOld: Buffer | undefined
    if (missingData >= 0 && touched.has(missingData)) {
      missingOld = Buffer.from(parity)
      const others = await Promise.all(
        Array.from({ length: n - 1 }, (_, d) => d)
          .filter((d) => d !== missingData)
          .map((d) => members.read(dataMember(stripe, d, n), base + lo, len)),
      )
      xorInto(missingOld, ...others)
    }
    await Promise.all(
      pieces.map(async (x) => {
        const at = x.start - lo
        const old =
          x.dataIndex === missingData && missingOld !== undefined
            ? missingOld.subarray(at, at + x.data.length)
            : await members.read(dataMember(stripe, x.dataIndex, n), base + x.start, x.data.length)
        const span = parity.subarray(at, at + x.data.length)
        xorInto(span, old, x.data)
      }),
    )
    return { lo, parity }
  } catch (err) {
    if (err instanceof MemberReadError) return 'retry'
    throw err
  }
}
