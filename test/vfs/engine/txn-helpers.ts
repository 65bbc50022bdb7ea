import { setTimeout as sleep } from 'node:timers/promises'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import type { TxnLog, TxnManager } from '../../../vfs/engine/txn/txn.ts'
import { prng } from '../../helpers/prng.ts'

export const BS = 1024

export interface LoggedCommit {
  tid: number
  blocks: Map<number, Buffer>
  revokes: number[]
  cost: number
}

export interface FakeLogOptions {
  capacity: number
  /** When set, each commit writes a marker block at `area + tid` and flushes; release writes `area`. */
  dev?: BlockDevice
  area?: number
  delayMs?: number
}

/** Markers the fake log leaves on the device, so crash states show what the log made durable. */
export const COMMIT_MAGIC = 0xc0c0c0c0
export const TAIL_MAGIC = 0x7a117a11

/**
 * An in-memory TxnLog with jbd2's accounting shape: a commit costs descriptor blocks (8 tags each
 * here, so tests reach several), its blocks, revoke blocks (16 each) and a commit block; space
 * returns on release. It keeps every committed copy so tests can replay it, and it checks the
 * contract: consecutive tids, one call at a time, never more than `free`.
 */
export class FakeLog implements TxnLog {
  readonly capacity: number
  readonly commits: LoggedCommit[] = []
  readonly events: string[] = []
  readonly violations: string[] = []
  closed = false
  released = 0
  gate: Promise<void> | null = null
  failCommit: number | null = null
  failRelease = false
  onCommit: ((c: LoggedCommit) => void) | null = null
  readonly #used = new Map<number, number>()
  readonly #dev: BlockDevice | undefined
  readonly #area: number
  readonly #delayMs: number
  #busy = false

  constructor(options: FakeLogOptions) {
    this.capacity = options.capacity
    this.#dev = options.dev
    this.#area = options.area ?? 0
    this.#delayMs = options.delayMs ?? 0
  }

  get free(): number {
    let used = 0
    for (const c of this.#used.values()) used += c
    return this.capacity - used
  }

  cost(blocks: number, revokes: number): number {
    return Math.ceil(blocks / 8) + blocks + Math.ceil(revokes / 16) + 1
  }

  async commit(tid: number, blocks: ReadonlyArray<{ block: number; data: Buffer }>, revokes: readonly number[]): Promise<void> {
    this.#enter(`commit ${tid}`)
    try {
      const last = this.commits.at(-1)?.tid
      if (last !== undefined && tid !== last + 1) this.violations.push(`commit ${tid} after ${last}`)
      const cost = this.cost(blocks.length, revokes.length)
      if (cost > this.free) this.violations.push(`commit ${tid} costs ${cost}, free ${this.free}`)
      const c: LoggedCommit = { tid, blocks: new Map(blocks.map((b) => [b.block, Buffer.from(b.data)])), revokes: [...revokes], cost }
      if (this.gate !== null) await this.gate
      if (this.#delayMs > 0) await sleep(this.#delayMs)
      if (this.failCommit === tid) throw Object.assign(new Error(`log write failed in commit ${tid}`), { code: 'EIO' })
      if (this.#dev !== undefined) {
        const marker = Buffer.alloc(BS)
        marker.writeUInt32LE(COMMIT_MAGIC, 0)
        marker.writeUInt32LE(tid, 4)
        await this.#dev.write((this.#area + tid) * BS, marker)
        await this.#dev.flush()
      }
      this.#used.set(tid, cost)
      this.commits.push(c)
      this.events.push(`commit ${tid}`)
      this.onCommit?.(c)
    } finally {
      this.#busy = false
    }
  }

  async release(tid: number): Promise<void> {
    this.#enter(`release ${tid}`)
    try {
      if (this.failRelease) throw Object.assign(new Error('journal superblock write failed'), { code: 'EIO' })
      if (tid < this.released) this.violations.push(`release ${tid} after ${this.released}`)
      if (this.#dev !== undefined) {
        const tail = Buffer.alloc(BS)
        tail.writeUInt32LE(TAIL_MAGIC, 0)
        tail.writeUInt32LE(tid, 4)
        await this.#dev.write(this.#area * BS, tail)
        await this.#dev.flush()
      }
      for (const t of [...this.#used.keys()]) if (t <= tid) this.#used.delete(t)
      this.released = tid
      this.events.push(`release ${tid}`)
    } finally {
      this.#busy = false
    }
  }

  async close(): Promise<void> {
    this.#enter('close')
    this.closed = true
    this.events.push('close')
    this.#busy = false
  }

  #enter(what: string): void {
    if (this.#busy) this.violations.push(`${what} while another log call is in flight`)
    if (this.closed) this.violations.push(`${what} after close`)
    this.#busy = true
  }
}

/** Counts what reaches the device; `failWrites`/`failFlush` make it fail like a dying disk. */
export class CountingDevice extends PassThroughDevice {
  reads = 0
  writes = 0
  flushes = 0
  failReads = false
  failWrites = false
  failFlush = false

  override read(offset: number, length: number): Promise<Buffer> {
    this.reads++
    return this.inner.read(offset, length)
  }

  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    if (this.failReads) throw Object.assign(new Error(`read at ${offset} failed`), { code: 'EIO' })
    this.reads++
    await this.inner.readInto(offset, target)
  }

  override async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.failWrites) throw Object.assign(new Error(`write at ${offset} failed`), { code: 'EIO' })
    this.writes++
    await this.inner.write(offset, data)
  }

  override async flush(): Promise<void> {
    if (this.failFlush) throw Object.assign(new Error('flush failed'), { code: 'EIO' })
    this.flushes++
    await this.inner.flush()
  }
}

/** The shared seeded generator (mulberry32), under the name this file's tests use. */
export { prng }

/** Append `op` to the list a test block holds (count at 0, u32 entries after it). */
export function appendOp(buf: Buffer, op: number): void {
  const n = buf.readUInt32LE(0)
  buf.writeUInt32LE(op, 4 + 4 * n)
  buf.writeUInt32LE(n + 1, 0)
}

export function opsIn(buf: Buffer): number[] {
  const n = Math.min(buf.readUInt32LE(0), (buf.length - 4) / 4)
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(buf.readUInt32LE(4 + 4 * i))
  return out
}

export interface OpPlan {
  op: number
  blocks: number[]
  /** Per block: 0 go on at once, 1 yield a turn, 2 sleep 1 ms — so handles interleave across awaits. */
  pauses: number[]
  durable: boolean
}

/** `ops` operations, each appending its number to 1 … maxPerOp distinct blocks of `pool`. */
export function makePlans(seed: number, ops: number, pool: number[], maxPerOp: number): OpPlan[] {
  const rnd = prng(seed)
  const plans: OpPlan[] = []
  for (let op = 1; op <= ops; op++) {
    const k = 1 + Math.floor(rnd() * maxPerOp)
    const blocks: number[] = []
    while (blocks.length < k) {
      const b = pool[Math.floor(rnd() * pool.length)]!
      if (!blocks.includes(b)) blocks.push(b)
    }
    plans.push({ op, blocks, pauses: blocks.map(() => Math.floor(rnd() * 3)), durable: rnd() < 0.3 })
  }
  return plans
}

const pause = async (kind: number): Promise<void> => {
  if (kind === 1) await new Promise<void>((resolve) => setImmediate(resolve))
  else if (kind === 2) await sleep(1)
}

/** Runs the plans on `concurrency` workers; `onDurable(op)` once an op that asked is durable. */
export async function runPlans(
  mgr: TxnManager,
  plans: OpPlan[],
  concurrency: number,
  onDurable: (op: number) => void = () => undefined,
): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < plans.length) {
      const p = plans[next++]!
      const h = await mgr.begin()
      for (const [i, b] of p.blocks.entries()) {
        const buf = await h.get(b)
        appendOp(buf, p.op)
        h.dirty(b)
        await pause(p.pauses[i]!)
      }
      mgr.end(h)
      if (p.durable) {
        await mgr.waitDurable(h.tid)
        onDurable(p.op)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

/** Ops found in only some of their blocks: each must be whole or absent. */
export function halfOps(state: Map<number, Buffer>, plans: OpPlan[]): number[] {
  const seen = new Map<number, number>()
  for (const buf of state.values()) for (const op of opsIn(buf)) seen.set(op, (seen.get(op) ?? 0) + 1)
  const half: number[] = []
  for (const [op, n] of seen) if (n !== plans[op - 1]?.blocks.length) half.push(op)
  return half
}
