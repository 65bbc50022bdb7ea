/*
 * A cluster export whose database cannot be reached when the server starts
 * (or when a reload adds it). The server must start anyway: its other exports
 * serve at once, and this one answers "try again later" until its database
 * answers, then serves normally, without a restart (issue 17 §5).
 *
 * Until then every operation fails with EAGAIN, which the NFS layer answers
 * NFS3ERR_JUKEBOX (RFC 1813 §2.6: "temporarily unable to complete"; clients
 * wait and retry) and MOUNT answers MNT3ERR_SERVERFAULT (server/mount/mnt.ts
 * says why). The export's handle key is not known either: the handle codec
 * holds it 'pending' (server/cluster-keys.ts), so its handles get JUKEBOX
 * too instead of BADHANDLE, which would end a client's mount.
 *
 * The opening is retried in the background with backoff (200 ms doubling to
 * 5 s); each new kind of failure is logged once.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { VfsError } from '../vfs/errors.ts'
import { ROOT_INODE } from '../vfs/cluster/schema.ts'
import type {
  Attr, Caller, CreateMode, Created, DirChange, DirPage, FileRef, FsStat, Owner, PathConf, ReadResult, SetAttr, Stability, Vfs, VfsCache,
  VfsCapabilities,
} from '../vfs/types.ts'

export interface PendingOptions {
  /**
   * Opens the real backend; rejects while the database is unreachable (or refuses). `activate`
   * runs just before the backend starts serving, in the same turn (it installs the handle key).
   */
  open: () => Promise<{ vfs: Vfs; activate: () => void }>
  /** What the export is, for messages. */
  what: string
  log?: { warn(msg: string): void; info?(msg: string): void }
  /** First and longest pause between attempts (ms). */
  minDelayMs?: number
  maxDelayMs?: number
}

export class PendingClusterVfs implements Vfs {
  private inner: Vfs | null = null
  private readonly stop = new AbortController()
  private readonly loop: Promise<void>
  private readonly o: PendingOptions
  private lastError = ''

  constructor(o: PendingOptions, firstError: Error) {
    this.o = o
    this.lastError = firstError.message
    o.log?.warn(`${o.what}: database not reachable (${firstError.message}); serving NFS3ERR_JUKEBOX until it is, retrying in the background`)
    this.loop = this.retry()
  }

  /** Whether the real backend is open (tests). */
  get ready(): boolean {
    return this.inner !== null
  }

  private async retry(): Promise<void> {
    let delay = this.o.minDelayMs ?? 200
    const max = this.o.maxDelayMs ?? 5000
    // close() aborts the signal: the wait ends at once, and an opening in flight is closed when it lands.
    while (!this.stopped()) {
      try {
        await sleep(delay, undefined, { signal: this.stop.signal })
      } catch {
        return // closed
      }
      try {
        const { vfs, activate } = await this.o.open()
        if (this.stopped()) {
          await vfs.close()
          return
        }
        activate()
        this.inner = vfs
        const msg = `${this.o.what}: database reached; serving`
        if (this.o.log?.info !== undefined) this.o.log.info(msg)
        else this.o.log?.warn(msg)
        return
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err)
        if (msg !== this.lastError) this.o.log?.warn(`${this.o.what}: still not open: ${msg}`)
        this.lastError = msg
        delay = Math.min(max, delay * 2)
      }
    }
  }

  private stopped(): boolean {
    return this.stop.signal.aborted
  }

  private cur(): Vfs {
    if (this.inner !== null) return this.inner
    throw new VfsError('EAGAIN', `${this.o.what}: the cluster database has not been reached yet (${this.lastError})`)
  }

  /** The cluster root is the same inode on every server and before the database answers. */
  root(): FileRef {
    return this.inner?.root() ?? { id: ROOT_INODE, gen: 1 }
  }

  capabilities(): VfsCapabilities {
    return this.cur().capabilities()
  }

  async getattr(f: FileRef): Promise<Attr> { return this.cur().getattr(f) }
  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> { return this.cur().lookup(dir, name) }
  async setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> { return this.cur().setattr(f, set) }
  async readlink(f: FileRef): Promise<Buffer> { return this.cur().readlink(f) }
  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> { return this.cur().read(f, offset, count) }
  async write(f: FileRef, offset: bigint, data: Buffer, stable: Stability, caller?: Caller): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    return this.cur().write(f, offset, data, stable, caller)
  }
  async commit(f: FileRef, offset: bigint, count: number): Promise<{ before: Attr; after: Attr }> { return this.cur().commit(f, offset, count) }
  async commitMetadata(refs: readonly FileRef[]): Promise<void> { await this.cur().commitMetadata?.(refs) }
  async create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> { return this.cur().create(dir, name, mode, owner) }
  async mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> { return this.cur().mkdir(dir, name, attr, owner) }
  async symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.cur().symlink(dir, name, target, attr, owner)
  }
  async mknod(
    dir: FileRef, name: Buffer, type: 'block' | 'char' | 'socket' | 'fifo', rdev: { major: number; minor: number }, attr: SetAttr, owner: Owner,
  ): Promise<Created> {
    return this.cur().mknod(dir, name, type, rdev, attr, owner)
  }
  async remove(dir: FileRef, name: Buffer): Promise<DirChange> { return this.cur().remove(dir, name) }
  async rmdir(dir: FileRef, name: Buffer): Promise<DirChange> { return this.cur().rmdir(dir, name) }
  async rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, caller?: Caller): Promise<{ from: DirChange; to: DirChange }> {
    return this.cur().rename(fromDir, fromName, toDir, toName, caller)
  }
  async link(f: FileRef, dir: FileRef, name: Buffer, caller?: Caller): Promise<{ attr: Attr; dir: DirChange }> { return this.cur().link(f, dir, name, caller) }
  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> { return this.cur().readdir(dir, cookie, max) }
  async fsstat(f: FileRef): Promise<FsStat> { return this.cur().fsstat(f) }
  async pathconf(f: FileRef): Promise<PathConf> { return this.cur().pathconf(f) }

  /** The real backend's caches once it opened (the server asks at each look at its memory). */
  caches(): readonly VfsCache[] {
    return this.inner?.caches?.() ?? []
  }

  /** Stops the retries (an opening in flight finishes and is closed), then closes the backend if it opened. */
  async close(): Promise<void> {
    this.stop.abort()
    await this.loop
    const v = this.inner
    this.inner = null
    await v?.close()
  }
}
