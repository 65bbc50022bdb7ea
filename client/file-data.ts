/*
 * The data path of one mount: the clean block cache, the block reader with
 * read-ahead, write-back, and the per-file states shared by every open of a
 * file. It listens to the attribute cache: a change of mtime, ctime or size
 * seen from the server drops the file's blocks (issue 4 point 5), unless the
 * file is being written by this client, whose own WRITE replies show such
 * changes (Linux does not invalidate a file it is writing either); the
 * blocks then carry the new attributes as their stamp.
 */
import type { fattr3 } from '../xdr/generated/nfs3.ts'
import type { SetAttrs } from './attrs.ts'
import { BlockCache, stampOf } from './cache/block-cache.ts'
import { handleKey } from './cache/attr-cache.ts'
import { keyedCopy } from './cache/own-copy.ts'
import type { AttrCache, AttrChangeEvent } from './cache/attr-cache.ts'
import { openFile } from './file.ts'
import type { NfsFile, OpenFlags } from './file.ts'
import type { FileDataOptions, ResolvedFileDataOptions } from './file-options.ts'
import { resolveFileDataOptions } from './file-options.ts'
import { BlockReader } from './file-read.ts'
import { FileState } from './file-state.ts'
import { withCred } from './identity.ts'
import type { CreateOptions } from './namespace-ops.ts'
import type { Nfs3 } from './nfs3.ts'
import type { CallCredential } from './rpc/auth.ts'
import { BufferPool } from './rpc/buffer-pool.ts'
import type { Limits } from './session.ts'
import type { ClientStats } from './stats.ts'
import type { Resolved } from './walk.ts'
import { Writeback } from './writeback.ts'

/** What the data path needs of NfsClient. */
export interface FileClient {
  readonly nfs: Nfs3
  readonly attrs: AttrCache
  readonly limits: Limits
  readonly counters: ClientStats
  /** Block buffers to lend and take back (the transport reads large READ replies into them). */
  readonly buffers?: BufferPool
  resolve(path: string, opts?: { follow?: boolean }): Promise<Resolved>
  create(path: string, opts?: CreateOptions): Promise<Resolved>
  getattr(fh: Buffer, opts?: { revalidate?: boolean }): Promise<fattr3>
  setattrFh(fh: Buffer, attrs: SetAttrs, opts?: { cred?: CallCredential }): Promise<void>
}

export class FileData {
  readonly client: FileClient
  readonly opts: ResolvedFileDataOptions
  readonly blocks: BlockCache
  readonly writeback: Writeback
  readonly reader: BlockReader
  readonly buffers: BufferPool
  private readonly states = new Map<string, FileState>()
  private readonly unsubscribe: () => void

  constructor(client: FileClient, o: FileDataOptions = {}) {
    this.client = client
    this.opts = resolveFileDataOptions(o, client.limits.rsize, client.limits.wsize)
    this.buffers = client.buffers ?? new BufferPool()
    // Keep room for every slab a long copy has lent at once: the dirty limit's worth, the read-ahead window, and a few.
    this.buffers.keep = Math.max(this.buffers.keep, Math.ceil(this.opts.dirtyLimitBytes / this.opts.blockSize) + this.opts.readaheadBlocks + 4)
    this.blocks = new BlockCache(this.opts.blockCacheBytes, this.opts.blockSize, client.counters)
    const deps = { nfs: client.nfs, attrs: client.attrs, blocks: this.blocks, counters: client.counters, opts: this.opts }
    this.writeback = new Writeback({ ...deps, files: () => this.states.values(), pool: this.buffers })
    this.reader = new BlockReader(deps)
    this.unsubscribe = client.attrs.onChange(ev => {
      this.onAttrChange(ev)
    })
  }

  /** via: the client (or a view of it, client.as(cred)) whose identity opens the file and moves its data. */
  open(path: string, flags?: OpenFlags, mode?: number, via: FileClient = this.client): Promise<NfsFile> {
    return openFile(this, path, flags, mode, via)
  }

  async readFile(path: string, via: FileClient = this.client): Promise<Buffer> {
    const f = await this.open(path, 'r', undefined, via)
    try {
      const parts: Buffer[] = []
      const chunk = this.opts.blockSize * 8
      for (;;) {
        const b = await f.read(chunk)
        if (b.length === 0) break
        parts.push(b)
      }
      return Buffer.concat(parts)
    } finally {
      await f.close()
    }
  }

  async writeFile(path: string, data: Buffer, opts: { mode?: number } = {}, via: FileClient = this.client): Promise<void> {
    const f = await this.open(path, 'w', opts.mode, via)
    try {
      await f.write(data)
    } catch (err) {
      await f.close().catch(() => undefined)
      throw err
    }
    await f.close()
  }

  /** Truncate an open file (SETATTR as cred, its opener): held data beyond size dropped, SETATTR, cached blocks past the new end dropped. */
  async truncate(f: FileState, size: number, cred?: CallCredential): Promise<void> {
    await this.writeback.truncateHeld(f, size)
    await this.client.setattrFh(f.fh, { size }, withCred(cred))
    this.blocks.dropFrom(f.key, Math.floor(size / this.opts.blockSize))
    const a = this.client.attrs.peek(f.fh)
    if (a !== undefined) this.blocks.restamp(f.key, stampOf(a))
  }

  /** Write out and COMMIT every file of the mount (umount); throws the first deferred error. */
  async syncAll(): Promise<void> {
    const states = [...this.states.values()]
    await Promise.all(states.map(s => this.writeback.sync(s)))
    for (const s of states) {
      const err = s.takeError()
      if (err !== null) throw err
    }
  }

  /** Stop listening to the attribute cache (umount). */
  close(): void {
    this.unsubscribe()
    for (const s of this.states.values()) if (s.timer !== null) clearTimeout(s.timer)
  }

  keyOf(fh: Buffer): string {
    return handleKey(fh)
  }

  peekState(fh: Buffer): FileState | undefined {
    return this.states.get(handleKey(fh))
  }

  acquire(fh: Buffer, writer: boolean): FileState {
    const key = handleKey(fh)
    let s = this.states.get(key)
    if (s === undefined) {
      s = new FileState(keyedCopy(fh, key), key)
      this.states.set(key, s)
    }
    s.opens++
    if (writer) s.writers++
    return s
  }

  release(s: FileState, writer: boolean): void {
    s.opens--
    if (writer) s.writers--
    if (s.opens === 0 && !s.busy && s.error === null) this.states.delete(s.key)
  }

  private onAttrChange(ev: AttrChangeEvent): void {
    if (ev.after !== null && this.states.get(ev.key)?.busy === true) {
      this.blocks.restamp(ev.key, stampOf(ev.after))
      return
    }
    this.blocks.dropFile(ev.key)
  }
}
