/*
 * NfsClient: one mounted export, with POSIX-like metadata calls by path.
 * The layers below stay reachable for the data path and the CLI: `nfs`
 * (typed calls), `attrs` (attribute cache), `names` (lookup cache),
 * `resolve`/`resolveParent` (path walk), `getattr` (close-to-open
 * revalidation), `counters` (open stats groups).
 *
 * `as(cred)` gives a view of the same mount that acts as another AUTH_SYS
 * identity: one connection, one set of caches and open-file states, each
 * call carrying the view's credential (the FUSE mount makes one per
 * caller). Answers that depend on who asks (ACCESS results, which names
 * a caller may be answered from the name cache) are kept per identity.
 */
import type { fattr3, FSSTAT3resok } from '../xdr/generated/nfs3.ts'
import { NfsStats } from './attrs.ts'
import type { SetAttrs, TimeLike } from './attrs.ts'
import { AttrCache } from './cache/attr-cache.ts'
import { IdleWatch, collectGarbage } from '../common/idle.ts'
import { NameCache } from './cache/name-cache.ts'
import { NfsError, isNfsError } from './errors.ts'
import { FileData } from './file-data.ts'
import type { NfsFile, OpenFlags } from './file.ts'
import type { FileDataOptions } from './file-options.ts'
import type { ExportEntry } from './mount.ts'
import * as ops from './namespace-ops.ts'
import type { CreateOptions, OpsContext } from './namespace-ops.ts'
import { Nfs3 } from './nfs3.ts'
import type { ClientOptions, ResolvedOptions } from './options.ts'
import type { CallCredential } from './rpc/auth.ts'
import { listDir, listDirPlus } from './readdir.ts'
import type { DirEntryPlus } from './readdir.ts'
import { BufferPool } from './rpc/buffer-pool.ts'
import type { Endpoint, Limits, MountTarget } from './session.ts'
import { applyLimits, findPorts, limitsOf, mountAndConnect, openMount, readdirplusMax, targetOf, umountEndpoint } from './session.ts'
import { ClientStats } from './stats.ts'
import { createReadStream, createWriteStream } from './streams.ts'
import type { ReadStreamOptions, WriteStreamOptions } from './streams.ts'
import type { ClientStatsSnapshot } from './stats.ts'
import { retryStale, walk, walkParent } from './walk.ts'
import type { Resolved, ResolvedParent } from './walk.ts'
import type { Readable, Writable } from 'node:stream'
import type { LockClient } from './lock/lock-client.ts'
import type { LockArgs, LockHolder, LockRangeArgs } from './lock/lock-client.ts'

export interface RmOptions {
  recursive?: boolean
  /** No error when the path does not exist. */
  force?: boolean
}

/** What every view of one mount shares and may change (a view writing its own copy would split the mount). */
interface MountState {
  /** The client created by mount(); views delegate to it. */
  readonly owner: NfsClient
  readdirplus: boolean
  unmounted: boolean
  fileData: FileData | undefined
  fileOptions: FileDataOptions
  /** Trims the caches once the mount has been idle (common/idle.ts); null: never. */
  readonly idle: IdleWatch | null
  /** NLM locks of this mount (client/lock/), loaded and made on first use. */
  locks: Promise<LockClient> | null
}

/** A file to lock: an open NfsFile, a handle, or a path. */
export type LockFile = NfsFile | Buffer | string

export class NfsClient implements OpsContext {
  readonly host: string
  readonly exportPath: string
  /** The path inside the export named by the mount URL ('/' if none). */
  readonly path: string
  readonly root: Buffer
  readonly nfs: Nfs3
  readonly attrs: AttrCache
  readonly names: NameCache
  readonly options: ResolvedOptions
  readonly limits: Limits
  /** The live counters; add your own groups with counters.add(group, key). */
  readonly counters: ClientStats
  /** Block buffers shared by the transport (READ records) and the data path (see BufferPool). */
  readonly buffers: BufferPool
  private readonly endpoint: Endpoint
  private readonly state: MountState

  private constructor(ep: Endpoint, exportPath: string, path: string, root: Buffer, nfs: Nfs3, limits: Limits, stats: ClientStats, buffers: BufferPool) {
    this.buffers = buffers
    this.endpoint = ep
    this.host = ep.host
    this.options = ep.opts
    this.exportPath = exportPath
    this.path = path
    this.root = root
    this.nfs = nfs
    this.attrs = nfs.attrs
    this.counters = stats
    this.names = new NameCache(this.attrs, ep.opts.nameCache, stats.nameCache)
    this.limits = limits
    const idle = ep.opts.idle
    // Every NFS call counts one in stats.nfs: while the sum stands still, the client is idle.
    const watch = idle.ms > 0 ? new IdleWatch(idle.ms, () => sumOf(stats.nfs), () => { this.trimMemory(idle.gc) }) : null
    this.state = { owner: this, readdirplus: ep.opts.readdirplus, unmounted: false, fileData: undefined, fileOptions: ep.opts.files, idle: watch, locks: null }
  }

  /**
   * This mount acting as cred: connection, caches and open files shared,
   * every call of the view (and of files it opens: reads, delayed writes,
   * COMMIT) sent with cred. unmount() of any view ends the mount.
   */
  as(cred: CallCredential): NfsClient {
    const view = Object.create(this.state.owner) as NfsClient
    Object.defineProperty(view, 'nfs', { value: this.nfs.as(cred), enumerable: true })
    return view
  }

  /** The credential this client's calls carry. */
  get cred(): CallCredential | undefined {
    return this.nfs.cred
  }

  /** Give back memory that only speeds things up: the clean cached blocks; with `gc`, then a full garbage collection. Returns the bytes dropped. */
  trimMemory(gc = false): number {
    const bytes = this.state.fileData?.blocks.trim() ?? 0
    if (gc) collectGarbage()
    return bytes
  }

  /** Mount an nfs:// URL (export found by EXPORT, see url.ts) or an explicit target. */
  static async mount(target: string | MountTarget, opts: ClientOptions = {}): Promise<NfsClient> {
    const t = targetOf(target, opts)
    const stats = new ClientStats()
    const ep = await findPorts(t.host, t.opts, stats)
    const buffers = new BufferPool()
    const { exportPath, path, root, transport } = await mountAndConnect(ep, stats, t, buffers)
    stats.watchTransport(() => transport.counters())
    const attrs = new AttrCache(ep.opts.attrCache)
    const nfs = new Nfs3(transport, attrs, stats.nfs, { jukeboxDelayMs: ep.opts.jukeboxDelayMs, jukeboxRetries: ep.opts.jukeboxRetries }, ep.opts.cred)
    try {
      const fsinfo = await nfs.call('FSINFO', { fsroot: { data: root } })
      const limits = limitsOf(fsinfo, ep.opts)
      applyLimits(transport, limits)
      return new NfsClient(ep, exportPath, path, root, nfs, limits, stats, buffers)
    } catch (err) {
      await transport.close()
      throw err
    }
  }

  /** The server's export list (showmount -e); target is a host name or an nfs:// URL. */
  static async exportList(target: string, opts: ClientOptions = {}): Promise<ExportEntry[]> {
    const t = target.startsWith('nfs://') ? targetOf(target, opts) : targetOf({ host: target, exportPath: '/' }, opts)
    const stats = new ClientStats()
    const m = await openMount(await findPorts(t.host, t.opts, stats), stats)
    try {
      return await m.exports()
    } finally {
      await m.close()
    }
  }

  stats(): ClientStatsSnapshot {
    const s = this.counters.snapshot()
    s.attrCache.updates = this.attrs.updates
    s.attrCache.changes = this.attrs.changes
    return s
  }

  /**
   * Attributes of a handle: the cached ones while fresh, else GETATTR.
   * revalidate: always GETATTR (close-to-open: the data path calls this on open).
   */
  async getattr(fh: Buffer, opts: { revalidate?: boolean } = {}): Promise<fattr3> {
    if (opts.revalidate !== true) {
      const a = this.attrs.get(fh)
      if (a !== undefined) {
        this.counters.attrCache.hits++
        return a
      }
    }
    this.counters.attrCache.misses++
    return (await this.nfs.call('GETATTR', { object: { data: fh } })).obj_attributes
  }

  op<T>(path: string, fn: (visited: Buffer[]) => Promise<T>): Promise<T> {
    return retryStale(this, fn).catch((err: unknown) => {
      throw err instanceof NfsError && err.path === undefined ? err.withPath(path) : err
    })
  }

  /** Path → handle and last known attributes; follow (default true) a final symlink. */
  resolve(path: string, opts: { follow?: boolean } = {}): Promise<Resolved> {
    return this.op(path, v => walk(this, path, { follow: opts.follow ?? true }, v))
  }

  /** Path → the directory holding its last component, and that name. */
  resolveParent(path: string): Promise<ResolvedParent> {
    return this.op(path, v => walkParent(this, path, v))
  }

  stat(path: string): Promise<NfsStats> {
    return this.statWith(path, true)
  }

  lstat(path: string): Promise<NfsStats> {
    return this.statWith(path, false)
  }

  /** Names in a directory, without '.' and '..' (READDIR). */
  readdir(path: string): Promise<string[]> {
    return this.op(path, async v => {
      const dir = await walk(this, path, { follow: true }, v)
      return (await listDir(this, dir.fh, this.limits.dirsize, path)).map(e => e.name)
    })
  }

  /** Entries with handles and attributes: READDIRPLUS, or READDIR + LOOKUP once the server said NOTSUPP (remembered). */
  readdirPlus(path: string): Promise<DirEntryPlus[]> {
    return this.op(path, async v => {
      const dir = await walk(this, path, { follow: true }, v)
      if (this.state.readdirplus) {
        try {
          return await listDirPlus(this, dir.fh, this.limits.dirsize, readdirplusMax(this.limits.dirsize), path)
        } catch (err) {
          if (!isNfsError(err, 'NFS3ERR_NOTSUPP')) throw err
          this.state.readdirplus = false
        }
      }
      const names = await listDir(this, dir.fh, this.limits.dirsize, path)
      return Promise.all(
        names.map(async e => {
          const child = await walk(this, `${path}/${e.name}`, { follow: false })
          const a = await this.getattr(child.fh)
          return { ...e, fh: child.fh, stats: new NfsStats(child.fh, a) }
        }),
      )
    })
  }

  /** Whether READDIRPLUS is still in use on this mount. */
  get usesReaddirPlus(): boolean {
    return this.state.readdirplus
  }

  async mkdir(path: string, opts: number | { mode?: number; recursive?: boolean } = {}): Promise<void> {
    const o = typeof opts === 'number' ? { mode: opts } : opts
    if (o.recursive === true) await ops.mkdirRecursive(this, path, o.mode ?? 0o777)
    else await ops.mkdirOne(this, path, o.mode ?? 0o777)
  }

  /** CREATE a regular file (UNCHECKED, or GUARDED with exclusive); returns its handle and attributes. */
  create(path: string, opts: CreateOptions = {}): Promise<Resolved> {
    return ops.createFile(this, path, opts)
  }

  rmdir(path: string): Promise<void> {
    return ops.removeName(this, path, 'RMDIR')
  }

  unlink(path: string): Promise<void> {
    return ops.removeName(this, path, 'REMOVE')
  }

  /** unlink, or rmdir after removing the contents when recursive (EISDIR for a directory otherwise). */
  rm(path: string, opts: RmOptions = {}): Promise<void> {
    return this.#rm(path, opts, new Set())
  }

  /**
   * `above`: the directories this removal is inside (fsid:fileid). A directory that is one of them
   * (a server whose LOOKUP of a name gives back the directory itself or an ancestor) would have the
   * removal go down for ever: ELOOP, as fts reports a directory cycle to rm(1).
   */
  async #rm(path: string, opts: RmOptions, above: Set<string>): Promise<void> {
    let st: NfsStats
    try {
      st = await this.lstat(path)
    } catch (err) {
      if (opts.force === true && isNfsError(err, 'NFS3ERR_NOENT')) return
      throw err
    }
    if (!st.isDirectory()) return this.unlink(path)
    if (opts.recursive !== true) throw NfsError.client('EISDIR', 'rm', path)
    const id = `${String(st.fsid)}:${String(st.fileid)}`
    if (above.has(id)) throw NfsError.client('ELOOP', 'rm', path)
    above.add(id)
    try {
      for (const name of await this.readdir(path)) await this.#rm(`${path}/${name}`, opts, above)
    } finally {
      above.delete(id)
    }
    await this.rmdir(path)
  }

  rename(from: string, to: string): Promise<void> {
    return ops.rename(this, from, to)
  }

  async symlink(target: string, path: string): Promise<void> {
    await ops.symlink(this, target, path)
  }

  readlink(path: string): Promise<string> {
    return ops.readlink(this, path)
  }

  link(existing: string, newPath: string): Promise<void> {
    return ops.link(this, existing, newPath)
  }

  truncate(path: string, size: number | bigint): Promise<void> {
    return ops.setattrPath(this, path, { size })
  }

  chmod(path: string, mode: number): Promise<void> {
    return ops.setattrPath(this, path, { mode })
  }

  chown(path: string, uid: number, gid: number): Promise<void> {
    return ops.setattrPath(this, path, { uid, gid })
  }

  utimes(path: string, atime: TimeLike, mtime: TimeLike): Promise<void> {
    return ops.setattrPath(this, path, { atime, mtime })
  }

  /** SETATTR on a path (follows symlinks). */
  setattr(path: string, attrs: SetAttrs): Promise<void> {
    return ops.setattrPath(this, path, attrs)
  }

  /** SETATTR on a handle (the data path's truncate of an open file, as its opener: cred). */
  setattrFh(fh: Buffer, attrs: SetAttrs, opts: { cred?: CallCredential } = {}): Promise<void> {
    return ops.setattrFh(this, fh, attrs, opts.cred)
  }

  /** FSSTAT of the export (df). */
  async statfs(): Promise<Omit<FSSTAT3resok, 'obj_attributes'>> {
    const r = await this.nfs.call('FSSTAT', { fsroot: { data: this.root } })
    return { tbytes: r.tbytes, fbytes: r.fbytes, abytes: r.abytes, tfiles: r.tfiles, ffiles: r.ffiles, afiles: r.afiles, invarsec: r.invarsec }
  }

  /**
   * Data path knobs (block cache, read-ahead, write-back: file-options.ts), over those given
   * to mount(); only before the first open.
   */
  configureFiles(opts: FileDataOptions): void {
    const st = this.state
    if (st.fileData !== undefined) throw NfsError.client('EINVAL', 'configureFiles')
    st.fileOptions = { ...st.fileOptions, ...opts }
  }

  /** The data path (created on first use, one for the mount and all its views). */
  get files(): FileData {
    const st = this.state
    st.fileData ??= new FileData(st.owner, st.fileOptions)
    return st.fileData
  }

  /** Open as this client's identity (a view's files read and write as its cred). */
  open(path: string, flags?: OpenFlags, mode?: number): Promise<NfsFile> {
    return this.files.open(path, flags, mode, this)
  }

  readFile(path: string): Promise<Buffer> {
    return this.files.readFile(path, this)
  }

  writeFile(path: string, data: Buffer, opts: { mode?: number } = {}): Promise<void> {
    return this.files.writeFile(path, data, opts, this)
  }

  createReadStream(path: string, opts: ReadStreamOptions = {}): Readable {
    return createReadStream(this.files, path, opts, this)
  }

  createWriteStream(path: string, opts: WriteStreamOptions = {}): Writable {
    return createWriteStream(this.files, path, opts, this)
  }

  /**
   * The mount's NLM locks (client/lock/lock-client.ts): where the lock
   * service and the held locks live. Loaded on first use: the lock client
   * and the NLM codec are a seventh of what a copy would load otherwise
   * (tsnfs cp never locks; bench/README.md, session 32).
   */
  locks(): Promise<LockClient> {
    const st = this.state
    st.locks ??= import('./lock/lock-client.ts').then(m => new m.LockClient(st.owner))
    return st.locks
  }

  /**
   * An NLM lock on a byte range (length 0: to the end of the file). Throws a
   * LockError: NLM_DENIED when another owner holds a conflicting lock and
   * wait is false, NLM_NOLOCKS, NLM_GRACE, NLM_DEADLOCK, NLM_CANCELLED when
   * signal gave up a wait. With wait, resolves once the server grants it.
   */
  async lock(file: LockFile, opts: LockArgs): Promise<void> {
    await (await this.locks()).lock(await this.lockFh(file), opts)
  }

  async unlock(file: LockFile, range: LockRangeArgs): Promise<void> {
    await (await this.locks()).unlock(await this.lockFh(file), range)
  }

  /** Who holds a lock that would conflict with this one (NLM TEST), or null. */
  async test(file: LockFile, range: LockRangeArgs & { exclusive: boolean }): Promise<LockHolder | null> {
    return (await this.locks()).test(await this.lockFh(file), range)
  }

  private async lockFh(file: LockFile): Promise<Buffer> {
    if (Buffer.isBuffer(file)) return file
    if (typeof file === 'string') return (await this.resolve(file)).fh
    return file.fh
  }

  /** Write out and COMMIT what files still hold, UMNT (best effort: the server's mount list is advisory), close the connection; throws a deferred write error last. */
  async umount(): Promise<void> {
    const st = this.state
    if (st.unmounted) return
    st.unmounted = true
    st.idle?.stop()
    // Locks go first: they name handles of this mount, and the server frees nothing for a client that stays up.
    await st.locks?.then(l => l.close()).catch(() => undefined)
    let deferred: Error | null = null
    if (st.fileData !== undefined) {
      try {
        await st.fileData.syncAll()
      } catch (err) {
        deferred = err instanceof Error ? err : new Error(String(err))
      }
      st.fileData.close()
    }
    // UMNT on its own connection while the NFS one closes: neither waits for the other.
    await Promise.all([umountEndpoint(this.endpoint, this.counters, this.exportPath), this.nfs.transport.close()])
    if (deferred !== null) throw deferred
  }

  private statWith(path: string, follow: boolean): Promise<NfsStats> {
    return this.op(path, async v => {
      const r = await walk(this, path, { follow }, v)
      return new NfsStats(r.fh, await this.getattr(r.fh))
    })
  }
}

function sumOf(counts: Record<string, number>): number {
  let n = 0
  for (const k in counts) n += counts[k] ?? 0
  return n
}
