/*
 * An open file (issue 4 point 8): positioned and sequential read/write over
 * the block cache, read-ahead and write-back, with close-to-open consistency
 * (open revalidates the attributes and drops blocks cached under others;
 * close flushes and COMMITs, and reports what background writes failed).
 *
 * The size an open file reports (stat, reads, appends) is the local one: the
 * server's, or the end of our own writes beyond it, as Linux keeps i_size
 * ahead of the server while pages are dirty. client.stat(path) shows the
 * server's size until the data is flushed.
 *
 * A file acts as its opener (`cred`, the credential of the client or view
 * that opened it), as Linux sends a file's I/O with its open context's
 * credential: its reads, read-ahead, delayed writes and truncation go out
 * as the opener whoever triggers them later.
 */
import { ACCESS3_MODIFY, ACCESS3_READ, ftype3 } from '../xdr/generated/nfs3.ts'
import type { fattr3 } from '../xdr/generated/nfs3.ts'
import { mayOpen } from './access.ts'
import { NfsStats } from './attrs.ts'
import { stampOf } from './cache/block-cache.ts'
import { NfsError, isNfsError } from './errors.ts'
import { downloadTo } from './file-download.ts'
import type { SinkWrite } from './file-download.ts'
import type { FileClient, FileData } from './file-data.ts'
import type { FileState } from './file-state.ts'
import { uploadFrom } from './file-upload.ts'
import type { SourceRead } from './file-upload.ts'
import { ReadAhead } from './readahead.ts'
import type { CallCredential } from './rpc/auth.ts'
import type { Resolved } from './walk.ts'

export type OpenFlags = 'r' | 'r+' | 'w' | 'w+' | 'wx' | 'a' | 'a+'

export interface WriteOptions {
  /** The buffer is the client's from now on: held without a copy until the server has it on stable storage. */
  transfer?: boolean
  /** With transfer: called exactly once, when the client holds nothing of the buffer any more (also when write() fails). */
  release?: () => void
}

const READABLE: ReadonlySet<OpenFlags> = new Set(['r', 'r+', 'w+', 'a+'])

/** The ACCESS bits each way of opening needs (Linux nfs_open_permission_mask). */
const OPEN_ACCESS: Readonly<Record<OpenFlags, number>> = {
  r: ACCESS3_READ,
  'r+': ACCESS3_READ | ACCESS3_MODIFY,
  w: ACCESS3_MODIFY,
  'w+': ACCESS3_READ | ACCESS3_MODIFY,
  wx: ACCESS3_MODIFY,
  a: ACCESS3_MODIFY,
  'a+': ACCESS3_READ | ACCESS3_MODIFY,
}

function badf(op: string, path: string): NfsError {
  return new NfsError(undefined, 'NFS_CLIENT_EBADF', 'EBADF', { procedure: op, path })
}

function toOffset(v: bigint | number, op: string, path: string): number {
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 0) throw NfsError.client('EINVAL', op, path)
  return n
}

export class NfsFile {
  readonly fh: Buffer
  readonly path: string
  readonly flags: OpenFlags
  /** The opener's credential (undefined: the mount's own). */
  readonly cred: CallCredential | undefined
  private readonly data: FileData
  private readonly state: FileState
  private readonly ra: ReadAhead
  private readonly readable: boolean
  private readonly writable: boolean
  private pos = 0
  private closed = false

  constructor(data: FileData, state: FileState, path: string, flags: OpenFlags, cred?: CallCredential) {
    this.data = data
    this.cred = cred
    this.state = state
    this.fh = state.fh
    this.path = path
    this.flags = flags
    this.readable = READABLE.has(flags)
    this.writable = flags !== 'r'
    this.ra = new ReadAhead(data.opts.readaheadBlocks)
  }

  /** Up to `length` bytes at position (default: the file offset, which then advances); short at EOF, empty at or past it. */
  async read(length: number, position?: bigint | number): Promise<Buffer> {
    this.check('read', this.readable)
    const pos = position === undefined ? this.pos : toOffset(position, 'read', this.path)
    await this.fresh()
    const end = Math.min(pos + Math.max(0, length), Number(this.size()))
    if (end <= pos) return Buffer.alloc(0)
    const plan = this.ra.onRead(pos, end, this.data.opts.blockSize)
    const out = await this.data.reader.read(this.state, pos, end, () => this.size(), plan, this.cred)
    if (position === undefined) this.pos = pos + out.length
    return out
  }

  /**
   * Block `index` (blockSize bytes from index × blockSize, short at the end
   * of the file, empty past it) in a buffer that is the caller's alone: the
   * read stream's way to hand data over without a copy. What this client
   * holds unwritten is included, as for read().
   */
  async readBlock(index: number): Promise<Buffer> {
    this.check('read', this.readable)
    await this.fresh()
    const bs = this.data.opts.blockSize
    if (index * bs >= Number(this.size())) return Buffer.alloc(0)
    const b = await this.data.reader.ownedBlock(this.state, index, this.cred)
    // Clipped to the local size after the READ (its attributes may have shown the file shorter).
    const limit = Math.max(0, Math.min(bs, Number(this.size()) - index * bs))
    if (b.length >= limit) return b.subarray(0, limit)
    // Short of the local size: a hole this client made by writing further on.
    const out = Buffer.alloc(limit)
    b.copy(out)
    return out
  }

  /**
   * Copy data into the file's dirty blocks (no RPC unless the mount is over
   * its dirty limit); 'a' and 'a+' append. transfer: the caller hands `data`
   * over and never changes it again (as a stream's chunks), so whole blocks
   * of it are sent as they are instead of copied.
   */
  async write(data: Buffer, position?: bigint | number, opts: WriteOptions = {}): Promise<number> {
    const release = opts.transfer === true ? (opts.release ?? null) : null
    // Read now: a buffer handed over may be given back (and detached) before write-back returns.
    const n = data.length
    let pos: number
    try {
      this.check('write', this.writable)
      const err = this.state.takeError()
      if (err !== null) throw err
      if (this.flags === 'a' || this.flags === 'a+') {
        await this.fresh()
        pos = Number(this.size())
      } else {
        pos = position === undefined ? this.pos : toOffset(position, 'write', this.path)
      }
    } catch (err) {
      release?.()
      throw err
    }
    // From here the write-back owns the buffer (and calls release).
    await this.data.writeback.write(this.state, pos, data, this.cred, opts.transfer === true, release)
    if (position === undefined || this.flags === 'a' || this.flags === 'a+') this.pos = pos + n
    return n
  }

  /**
   * Write the whole file from a source that can be read again (a local
   * file), as nfs-cp does: no block is held for the COMMIT, which comes once
   * at the end, and what its verifier does not cover is read again
   * (file-upload.ts). What this client held for the file goes out first;
   * writes through other opens meanwhile are not ordered with it. Returns
   * the bytes written; onBlock sees each block as it is read.
   */
  async writeFrom(read: SourceRead, onBlock?: (n: number) => void): Promise<number> {
    this.check('write', this.writable)
    await this.data.writeback.sync(this.state)
    const err = this.state.takeError()
    if (err !== null) throw err
    try {
      return await uploadFrom({ nfs: this.data.client.nfs, fh: this.fh, cred: this.cred, buffers: this.data.buffers, blockSize: this.data.opts.blockSize, slots: this.data.opts.writeSlots }, read, onBlock)
    } finally {
      // Blocks cached before are stale now (the attributes came with the WRITE replies).
      this.data.blocks.dropFile(this.state.key)
    }
  }

  /**
   * The whole file, from offset 0 to its end, into `write` in order (a local
   * file, for tsnfs cp): READs several at a time, each reply's data handed
   * over from the buffer it was received into, which goes back to the pool
   * when `write` returns (client/file-download.ts). Nothing is cached. What
   * this client holds unwritten for the file is written out first, so the
   * server's data is the file's. Returns the bytes read.
   */
  async readTo(write: SinkWrite, onData?: (n: number) => void): Promise<number> {
    this.check('read', this.readable)
    if (this.state.held > 0) await this.data.writeback.sync(this.state)
    await this.fresh()
    return downloadTo({ nfs: this.data.client.nfs, fh: this.fh, cred: this.cred, buffers: this.data.buffers, blockSize: this.data.opts.blockSize, slots: this.data.opts.readaheadBlocks, size: () => this.localSize }, write, onData)
  }

  /** Attributes (cached while fresh), with the local size. */
  async stat(): Promise<NfsStats> {
    this.check('stat', true)
    const a = await this.data.client.getattr(this.fh)
    return new NfsStats(this.fh, { ...a, size: this.state.sizeWith(a.size) })
  }

  /** Cut or extend the file: held data beyond size is dropped (never sent), then SETATTR. */
  async truncate(size: bigint | number): Promise<void> {
    this.check('truncate', this.writable)
    const n = toOffset(size, 'truncate', this.path)
    await this.data.truncate(this.state, n, this.cred)
  }

  /** Write out and COMMIT everything this client holds for the file; throws a deferred write error. */
  async fsync(): Promise<void> {
    this.check('fsync', true)
    await this.data.writeback.sync(this.state)
    const err = this.state.takeError()
    if (err !== null) throw err
  }

  /** Flush and COMMIT (close-to-open), throw a deferred error; a second close does nothing. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      if (this.writable) {
        await this.data.writeback.sync(this.state)
        const err = this.state.takeError()
        if (err !== null) throw err
      }
    } finally {
      this.data.release(this.state, this.writable)
    }
  }

  get position(): number {
    return this.pos
  }

  /** Bytes per block (readBlock), and blocks a sequential reader may ask ahead (the read-ahead window). */
  get blockSize(): number {
    return this.data.opts.blockSize
  }

  get readaheadBlocks(): number {
    return this.data.opts.readaheadBlocks
  }

  /**
   * A block-sized buffer from the client's pool, to fill and hand over with
   * write(…, { transfer: true }): it goes back to the pool once the server
   * has its data on stable storage, so a long copy keeps using the same
   * memory instead of faulting in fresh pages for every block.
   */
  takeBuffer(): Buffer {
    return this.data.buffers.take(this.data.opts.blockSize)
  }

  /** Give back a buffer readBlock() returned (or takeBuffer() lent and was not written), once done with it. Optional: one never given back is collected. */
  release(buf: Buffer): void {
    this.data.buffers.give(buf)
  }

  /** The size as this client sees it: the server's as last known, or the end of writes held beyond it. */
  get localSize(): number {
    return Number(this.size())
  }

  private size(): bigint {
    return this.state.sizeWith(this.data.client.attrs.peek(this.fh)?.size)
  }

  /** Attributes past their expiry are asked for again (a change seen drops the file's blocks). */
  private async fresh(): Promise<void> {
    if (!this.data.client.attrs.isFresh(this.fh)) await this.data.client.getattr(this.fh)
  }

  private check(op: string, allowed: boolean): void {
    if (this.closed || !allowed) throw badf(op, this.path)
  }
}

/**
 * Open (and create or truncate, per flags) a regular file; revalidates its
 * attributes (close-to-open). via: the client or view whose identity walks,
 * creates and then owns the file's I/O.
 */
export async function openFile(data: FileData, path: string, flags: OpenFlags = 'r', mode = 0o644, via: FileClient = data.client): Promise<NfsFile> {
  const c = via
  let r: Resolved
  let created = false
  if (flags === 'wx') {
    r = await c.create(path, { mode, exclusive: true })
    created = true
  } else if (flags === 'r' || flags === 'r+') {
    r = await c.resolve(path)
  } else {
    try {
      r = await c.resolve(path)
    } catch (err) {
      if (!isNfsError(err, 'NFS3ERR_NOENT')) throw err
      r = await c.create(path, { mode })
      created = true
    }
  }
  if (r.attrs.type === ftype3.NF3DIR) throw NfsError.client('EISDIR', 'open', path)
  const writable = flags !== 'r'
  const before = data.peekState(r.fh)
  const busy = before?.busy ?? false
  // nfs(5) cto: every open asks the server, whatever the cache says (a new file's attributes came with CREATE);
  // and may this identity open it so (the caches are shared by every identity of the mount: access.ts).
  const a: fattr3 = created ? r.attrs : await mayOpen(c, r.fh, OPEN_ACCESS[flags], path)
  if (!busy) data.blocks.validate(data.keyOf(r.fh), stampOf(a))
  const state = data.acquire(r.fh, writable)
  const file = new NfsFile(data, state, path, flags, c.nfs.cred)
  if ((flags === 'w' || flags === 'w+') && !created && (a.size !== 0n || state.held > 0)) {
    try {
      await data.truncate(state, 0, c.nfs.cred)
    } catch (err) {
      await file.close().catch(() => undefined)
      throw err
    }
  }
  return file
}
