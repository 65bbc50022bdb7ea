import { checkRange, closedError, readOnlyError } from '../engine/blockdev/block-device.ts'
import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { Layer, LayerKind, LayerStatus } from './layer.ts'
import { closeMembers } from './layer-checks.ts'
import { splitRange } from './split-io.ts'
import type { MapFn, Piece } from './split-io.ts'

/**
 * The I/O of a layer without redundancy (span, stripe): every layer byte lives on exactly one
 * member, so an I/O is cut into member pieces that go out in parallel, and the I/O resolves when
 * every piece has. A piece that fails fails the whole I/O (there is no other copy). Reads land in
 * subarrays of the caller's buffer, so a read costs no copy. It owns its members.
 */
export abstract class SplitLayer implements Layer {
  abstract readonly kind: LayerKind
  readonly size: number
  readonly sectorSize: number
  readonly members: readonly BlockDevice[]
  readonly readOnly: boolean
  #closed = false

  protected constructor(members: readonly BlockDevice[], size: number, sectorSize: number) {
    this.members = [...members]
    this.size = size
    this.sectorSize = sectorSize
    this.readOnly = members.some((m) => m.readOnly)
  }

  /** Where layer byte `offset` lives and how far the run on that member goes. */
  protected abstract map: MapFn

  /** The member pieces of [offset, offset + length), for tests and tools that need the layout. */
  pieces(offset: number, length: number): Piece[] {
    checkRange(this.size, offset, length, 'map')
    return splitRange(offset, length, this.map)
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.#check('read', offset, length) // before allocating: length comes from the caller
    const out = Buffer.alloc(length)
    await this.readInto(offset, out)
    return out
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.#check('read', offset, target.length)
    await this.#each(offset, target.length, (m, p) => m.readInto(p.memberOffset, target.subarray(p.bufOffset, p.bufOffset + p.length)))
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#check('write', offset, data.length)
    if (this.readOnly) throw readOnlyError(offset)
    await this.#each(offset, data.length, (m, p) => m.write(p.memberOffset, data.subarray(p.bufOffset, p.bufOffset + p.length)))
  }

  async flush(): Promise<void> {
    if (this.#closed) throw closedError('flush')
    await settleAll(this.members.map((m) => m.flush()))
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await closeMembers(this.members)
  }

  status(): LayerStatus {
    return { kind: this.kind, size: this.size, degraded: false, failed: false, members: this.members.map((_, index) => ({ index, state: 'ok' })) }
  }

  #check(what: string, offset: number, length: number): void {
    if (this.#closed) throw closedError(what)
    checkRange(this.size, offset, length, what)
  }

  async #each(offset: number, length: number, io: (m: BlockDevice, p: Piece) => Promise<void>): Promise<void> {
    const pieces = splitRange(offset, length, this.map)
    await settleAll(pieces.map((p) => io(this.members[p.member] as BlockDevice, p)))
  }
}

/**
 * Waits for every promise, then rejects with the first failure. Not Promise.all: a caller that
 * sees the rejection may retry or reuse its buffer at once, so no piece may still be running.
 */
export async function settleAll(ops: readonly Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(ops)
  for (const r of results) if (r.status === 'rejected') throw r.reason
}
