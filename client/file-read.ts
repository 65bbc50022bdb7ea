/*
 * The read path: blocks from the clean cache, else one READ per block
 * (continuing short replies until eof, RFC 1813 §3.3.6), several in flight,
 * concurrent requests for a block shared; what the file holds unwritten is
 * laid over the server's data before the block is cached (read-your-writes).
 * Read-ahead requests go through the same fetch and are marked, so the first
 * application read they serve counts as a read-ahead hit.
 */
import { stampOf } from './cache/block-cache.ts'
import type { BlockCache } from './cache/block-cache.ts'
import type { AttrCache } from './cache/attr-cache.ts'
import type { ResolvedFileDataOptions } from './file-options.ts'
import { Slots, mapLimit } from './file-slots.ts'
import type { FileState } from './file-state.ts'
import { overlay } from './file-state.ts'
import { withCred } from './identity.ts'
import type { Nfs3 } from './nfs3.ts'
import type { ReadAheadPlan } from './readahead.ts'
import type { CallCredential } from './rpc/auth.ts'
import type { ClientStats } from './stats.ts'

/** A READ that raced with data leaving the overlay is sent again, this many times at most. */
const MAX_REREADS = 3

export interface ReaderDeps {
  nfs: Nfs3
  attrs: AttrCache
  blocks: BlockCache
  counters: ClientStats
  opts: ResolvedFileDataOptions
}

interface Pending {
  promise: Promise<Buffer>
  readahead: boolean
}

export class BlockReader {
  private readonly d: ReaderDeps
  private readonly bs: number
  private readonly slots: Slots
  private readonly pending = new Map<string, Pending>()

  constructor(deps: ReaderDeps) {
    this.d = deps
    this.bs = deps.opts.blockSize
    this.slots = new Slots(deps.opts.readSlots)
  }

  /**
   * Bytes [pos, end) of the file, end already capped at the local size;
   * blocks past the server's data read as zeros (holes we made by writing
   * further on). Read-ahead for `plan` is issued after the blocks asked for.
   */
  async read(f: FileState, pos: number, end: number, size: () => bigint, plan: ReadAheadPlan | null, cred?: CallCredential): Promise<Buffer> {
    const first = Math.floor(pos / this.bs)
    const last = Math.floor((end - 1) / this.bs)
    const indexes: number[] = []
    for (let i = first; i <= last; i++) indexes.push(i)
    const blocks = mapLimit(indexes, this.d.opts.readSlots, i => this.appBlock(f, i, cred))
    if (plan !== null) this.readAhead(f, plan, size(), cred)
    const parts = await blocks
    // A READ's attributes may have shown the file shorter (another client truncated it).
    const limit = Math.min(end, Number(size()))
    const out = Buffer.allocUnsafe(Math.max(0, limit - pos))
    // Every byte is copied in or zeroed: blocks short of the local size are holes we made by writing further on.
    let filled = 0
    parts.forEach((data, k) => {
      const start = (first + k) * this.bs
      const a = Math.max(pos, start)
      const b = Math.min(limit, start + this.bs)
      if (b <= a) return
      const got = Math.max(a, Math.min(b, start + data.length))
      if (got > a) data.copy(out, a - pos, a - start, got - start)
      if (got < b) out.fill(0, got - pos, b - pos)
      filled = b - pos
    })
    if (filled < out.length) out.fill(0, filled)
    return out
  }

  /** cred: the reader's (its opener's) credential, for the READs sent (undefined: the mount's). */
  private async appBlock(f: FileState, index: number, cred: CallCredential | undefined): Promise<Buffer> {
    const c = this.d.blocks.get(f.key, index)
    if (c !== undefined) {
      this.d.counters.add('blockCache', 'hits')
      if (c.readahead) {
        c.readahead = false
        this.d.counters.add('readahead', 'hits')
      }
      return c.data
    }
    this.d.counters.add('blockCache', 'misses')
    const p = this.pending.get(`${f.key}:${index}`)
    if (p !== undefined) {
      if (p.readahead) {
        // Read-ahead asked for it, but it is still on the way.
        this.d.counters.add('readahead', 'hits')
        this.d.counters.add('read', 'raWaits')
        const data = await p.promise
        const cached = this.d.blocks.get(f.key, index)
        if (cached !== undefined) cached.readahead = false
        return data
      }
      return p.promise
    }
    this.d.counters.add('read', 'waits')
    return this.fetch(f, index, false, cred)
  }

  private readAhead(f: FileState, plan: ReadAheadPlan, size: bigint, cred: CallCredential | undefined): void {
    const lastBlock = size === 0n ? -1 : Math.floor((Number(size) - 1) / this.bs)
    for (let i = plan.from; i < plan.to && i <= lastBlock; i++) {
      if (this.pending.has(`${f.key}:${i}`) || this.d.blocks.has(f.key, i)) continue
      this.d.counters.add('readahead', 'issued')
      // A failed read-ahead is forgotten: the application's own read will ask again and see the error.
      this.fetch(f, i, true, cred).catch(() => undefined)
    }
  }

  private fetch(f: FileState, index: number, readahead: boolean, cred: CallCredential | undefined): Promise<Buffer> {
    const key = `${f.key}:${index}`
    const p = this.fetchBlock(f, index, readahead, cred).finally(() => this.pending.delete(key))
    this.pending.set(key, { promise: p, readahead })
    return p
  }

  /**
   * Block `index` in a buffer of the caller's own (a read stream's chunk,
   * handed to its consumer as it is): a copy of a cached or pending block,
   * else a READ whose data is not cached (a stream reads a file once; its
   * blocks would only push others out of the cache).
   */
  async ownedBlock(f: FileState, index: number, cred: CallCredential | undefined): Promise<Buffer> {
    const c = this.d.blocks.get(f.key, index)
    if (c !== undefined) {
      this.d.counters.add('blockCache', 'hits')
      return Buffer.from(c.data)
    }
    const p = this.pending.get(`${f.key}:${index}`)
    if (p !== undefined) return Buffer.from(await p.promise)
    this.d.counters.add('read', 'owned')
    return this.fetchBlock(f, index, false, cred, false)
  }

  private async fetchBlock(f: FileState, index: number, readahead: boolean, cred: CallCredential | undefined, store = true): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const gen = f.gen
      const serverSize = this.d.attrs.peek(f.fh)?.size
      // Past the server's end of file, with writes of ours pending, there is nothing to ask for.
      const skip = f.held > 0 && serverSize !== undefined && BigInt(index * this.bs) >= serverSize
      const server = skip ? Buffer.alloc(0) : await this.readRange(f.fh, index * this.bs, this.bs, cred)
      // Data left the overlay while the READ was out: the reply may predate the WRITE that held it.
      if (f.gen !== gen && attempt < MAX_REREADS) continue
      const data = overlay(f, index, this.bs, server)
      if (!store) return data
      const a = this.d.attrs.peek(f.fh)
      this.d.blocks.set(f.key, index, { data, readahead }, a === undefined ? undefined : stampOf(a), f.busy)
      return data
    }
  }

  /** READ [offset, offset + count), continuing short replies until eof. */
  private async readRange(fh: Buffer, offset: number, count: number, cred: CallCredential | undefined): Promise<Buffer> {
    const parts: Buffer[] = []
    let got = 0
    while (got < count) {
      const r = await this.slots.run(() => this.d.nfs.call('READ', { file: { data: fh }, offset: BigInt(offset + got), count: count - got }, withCred(cred)))
      parts.push(r.data)
      got += r.data.length
      if (r.eof || r.data.length === 0) break
    }
    const only = parts[0]
    // The data is a view of the reply record, which is this reply's alone: kept as it is when it is
    // most of that memory (a large READ is read straight into its record), else copied out so a
    // small block does not hold on to a whole socket read.
    if (parts.length === 1 && only !== undefined && only.length * 2 >= only.buffer.byteLength) return only
    return Buffer.concat(parts, got)
  }
}
