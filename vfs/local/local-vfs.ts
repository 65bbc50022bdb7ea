/*
 * The local backend: exports a real host directory. Identity, resolution
 * and containment are in resolver.ts (handles are inode + birth-time
 * generation, resolved through a persistent index, never through a
 * symlink, never outside the root); this file is the Vfs operations.
 *
 * Every operation pins the objects it works on (an O_PATH fd held for the
 * duration of the call) and names children as `/proc/self/fd/<dir>/<name>`,
 * so a symlink swapped in for a directory on the host during a request
 * cannot redirect it: the parent fd still holds the real directory.
 *
 * Mount points below the export are crossed only with `crossmnt` (as
 * knfsd's crossmnt): ids are then device-qualified (devices.ts), FSSTAT and
 * PATHCONF describe the file system of the object asked about, and RENAME
 * or LINK between file systems is EXDEV (the kernel's answer). Without it,
 * LOOKUP of a mount point is EACCES and READDIR lists it with a fileid
 * marked foreign (bit 63) and no handle.
 */
import fs from 'node:fs'
import type { BigIntStats } from 'node:fs'
import { VfsError } from '../errors.ts'
import { checkName, isDot, isDotDot } from '../names.ts'
import type {
  Attr, CreateMode, Created, DirChange, DirPage, FileRef, FsStat, Owner, PathConf, ReadResult, SetAttr, Stability, Vfs, VfsCapabilities,
} from '../types.ts'
import { genFromBirth, isSmall, randomGen, toAttr } from './attr.ts'
import { createFile, makeDir, makeNode, makeSymlink } from './create.ts'
import { DeviceTable } from './devices.ts'
import { CoalescingSync, fsyncPinned, syncRoundsAllowed } from './dir-sync.ts'
import { linkEntry, removeEntry, renameEntry, rmdirEntry } from './entries.ts'
import type { Effects } from './entries.ts'
import { NameAttrCache } from './attr-cache.ts'
import { commitFile, readFile, writeFile } from './file-io.ts'
import type { LocalCore } from './create.ts'
import { FdCache } from './fd-cache.ts'
import { fsStatOf, pathConfOf } from './fs-info.ts'
import { HandleIndex } from './handle-index.ts'
import { IoFiles } from './io-files.ts'
import { DirSnapshots, readdirPage } from './readdir.ts'
import { DEFAULT_READ_POOL_BYTES, READ_BUFFER_SIZE, ReadBuffers } from '../memory/read-buffers.ts'
import { SyncGate } from './sync-gate.ts'
import { reportNoNativeTimes } from './native-times.ts'
import { Resolver } from './resolver.ts'
import type { Pinned } from './resolver.ts'
import { applySetAttr, MAX_FILE_SIZE } from './set-attr.ts'
import { fdPath, lstatNow, PIN_DIR_FLAGS, readlinkBytes, toVfsError } from './sys.ts'

export interface LocalVfsOptions {
  /** The host directory to export (symlinks in this path are resolved once, at start). */
  root: string
  /** Where this export's handle index lives, e.g. `<server state>/local/<export id>/`; created if missing. */
  stateDir: string
  /**
   * Cross into file systems mounted below the root, nested too (exports(5) crossmnt). Their
   * objects get ids `1<<63 | k<<47 | ino`, k a device number kept in `<stateDir>/devices`;
   * objects whose inode does not fit 47 bits (or past 65535 devices) are not exportable
   * (LOOKUP EACCES, listed without a handle). Default false: mount points answer EACCES.
   */
  crossmnt?: boolean
  /** Entries a fallback search for an unknown inode may visit (default 1,000,000). */
  searchLimit?: number
  /** Cached O_PATH fds of files and directories (default 256; closed after 5 s idle, reopened after 10 s). */
  pathFds?: number
  /** Cached read/write fds (default 128; closed after 2 s idle). */
  ioFds?: number
  /** Directory entries kept in READDIR snapshots, over all directories (default 1,000,000). */
  snapshotEntries?: number
  /**
   * WRITEs copy into the page cache on the event loop until one takes longer than this many
   * ms; the next second of WRITEs then goes through the thread pool (default 20; 0: always
   * through the thread pool). See sync-gate.ts.
   */
  syncWriteMs?: number
  /**
   * How long READDIRPLUS may reuse what a LOOKUP or READDIRPLUS saw of a name (attr-cache.ts;
   * default 1000 ms, at most 1000; 0: never), and how many names are kept (default 50,000).
   */
  nameCacheMs?: number
  nameCacheEntries?: number
  /** Told once per process when the native times helper cannot be loaded (timestamps then fall back to touch(1)). */
  warn?: (msg: string) => void
  /**
   * Where READ data is read into (1 MiB buffers lent to the reply until sent). Several exports
   * may share one; the server trims it when idle. Default: one of this backend's own keeping up
   * to 32 MiB of idle buffers.
   */
  readBuffers?: ReadBuffers
}

export interface LocalVfsStats {
  /** Directory reads for READDIR snapshots. */
  snapshotBuilds: number
  /** Fallback searches of the tree. */
  searches: number
  pathFds: number
  ioFds: number
  indexEntries: number
  /** READDIRPLUS entries answered from the name cache (attr-cache.ts). */
  nameCacheHits: number
}

const SWEEP_MS = 1000
/** READs of up to 1 MiB (the server's usual rtmax) read into pooled buffers; by default up to 32 MiB of idle ones are kept. */
export { DEFAULT_READ_POOL_BYTES, READ_BUFFER_SIZE } from '../memory/read-buffers.ts'
const WRITE_BACKOFF_MS = 1000

export class LocalVfs implements Vfs {
  readonly #res: Resolver
  readonly #index: HandleIndex
  readonly #paths: FdCache
  readonly #io: IoFiles
  readonly #snaps: DirSnapshots
  readonly #bufs: ReadBuffers
  readonly #writeGate: SyncGate
  readonly #names: NameAttrCache
  readonly #core: LocalCore
  readonly #meta: CoalescingSync<bigint, FileRef>
  readonly #timer: NodeJS.Timeout
  #closed = false
  #inflight = 0
  readonly #idle: (() => void)[] = []

  constructor(o: LocalVfsOptions) {
    reportNoNativeTimes(o.warn)
    this.#bufs = o.readBuffers ?? new ReadBuffers(READ_BUFFER_SIZE, { maxBytes: DEFAULT_READ_POOL_BYTES })
    const rootFd = fs.openSync(o.root, PIN_DIR_FLAGS & ~fs.constants.O_NOFOLLOW)
    const rootSt = fs.fstatSync(rootFd, { bigint: true })
    const birth = genFromBirth(rootSt)
    this.#index = new HandleIndex(o.stateDir, rootSt.ino, birth, randomGen)
    this.#paths = new FdCache({ max: o.pathFds ?? 256, idleMs: 5000, maxAgeMs: 10_000, cheapClose: true })
    const ioCache = new FdCache({ max: o.ioFds ?? 128, idleMs: 2000, maxAgeMs: 60_000, cheapClose: true })
    this.#io = new IoFiles(ioCache)
    const devices = o.crossmnt === true ? new DeviceTable(o.stateDir) : null
    this.#res = new Resolver({
      rootFd, rootSt, rootGen: birth ?? this.#index.rootGen, index: this.#index, cache: this.#paths, searchLimit: o.searchLimit ?? 1_000_000, devices,
    })
    this.#snaps = new DirSnapshots(o.snapshotEntries ?? 1_000_000)
    this.#writeGate = new SyncGate(o.syncWriteMs ?? 20, WRITE_BACKOFF_MS)
    this.#names = new NameAttrCache(Math.min(o.nameCacheMs ?? 1000, 1000), o.nameCacheEntries ?? 50_000)
    this.#core = { res: this.#res, io: this.#io, isRoot: process.getuid?.() === 0 }
    this.#meta = new CoalescingSync((ref: FileRef) => this.#fsyncObject(ref), syncRoundsAllowed())
    this.#timer = setInterval(() => {
      this.#paths.sweep()
      ioCache.sweep()
      this.#names.sweep()
    }, SWEEP_MS).unref()
  }

  root(): FileRef {
    return { id: this.#res.rootId, gen: this.#res.rootGen }
  }

  capabilities(): VfsCapabilities {
    return {
      maxFileSize: MAX_FILE_SIZE,
      timeDelta: { sec: 0, nsec: 1 },
      hardLinks: true,
      symlinks: true,
      deviceNodes: this.#core.isRoot,
      canSetTime: true,
    }
  }

  stats(): LocalVfsStats {
    return {
      snapshotBuilds: this.#snaps.builds,
      searches: this.#res.searches,
      pathFds: this.#paths.openCount,
      ioFds: this.#io.openCount,
      indexEntries: this.#index.size,
      nameCacheHits: this.#names.hits,
    }
  }

  async getattr(f: FileRef): Promise<Attr> {
    return this.#with(f, p => Promise.resolve(toAttr(p.st, p.gen, p.id)))
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    return this.#withDir(dir, async d => {
      checkName(name)
      if (isDot(name)) return { ref: { id: d.id, gen: d.gen }, attr: toAttr(d.st, d.gen, d.id) }
      if (isDotDot(name)) {
        // `..` of the export root is the root; elsewhere the real parent, pinned like any ref (so never outside).
        // From the root of a mounted file system the kernel's `..` is the mount point's parent.
        if (d.id === this.#res.rootId) return { ref: { id: d.id, gen: d.gen }, attr: toAttr(d.st, d.gen, d.id) }
        const up = this.#lstat(fdPath(d.fd, name))
        const id = this.#res.idOf(up)
        if (id === null) throw new VfsError('EACCES', 'parent not exportable')
        const ref = { id, gen: this.#res.genOf(up, id) }
        return { ref, attr: await this.getattr(ref) }
      }
      const st = this.#lstat(fdPath(d.fd, name))
      const seen = this.#res.note(d.id, name, st)
      if (seen === null) {
        throw new VfsError('EACCES', this.#res.crossmnt || st.dev === this.#res.rootDev ? 'inode number cannot be exported' : 'mount point: not crossed without crossmnt')
      }
      const attr = toAttr(st, seen.gen, seen.id)
      this.#names.put(d.id, d.st, name, { id: seen.id, gen: seen.gen, attr })
      return { ref: { id: seen.id, gen: seen.gen }, attr }
    })
  }

  async setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    return this.#with(f, p => this.#changes([p.id], async () => ({ before: toAttr(p.st, p.gen, p.id), after: toAttr(await applySetAttr(this.#io, p, set), p.gen, p.id) })))
  }

  async readlink(f: FileRef): Promise<Buffer> {
    return this.#with(f, async p => {
      if (p.type !== 'symlink') throw new VfsError('EINVAL', 'not a symlink')
      // readlink of /proc/self/fd/<n> would give the magic link's path: read it by name in its parent.
      const { parent, name } = await this.#res.entryOf(p)
      try {
        return await readlinkBytes(fdPath(parent.fd, name))
      } catch (err) {
        throw toVfsError(err)
      } finally {
        parent.release()
      }
    })
  }

  /** The data is lent from a pool of read buffers: `release` gives it back once sent. */
  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    return this.#withFile(f, p => readFile(this.#io, this.#bufs, p, offset, count))
  }

  async write(
    f: FileRef,
    offset: bigint,
    data: Buffer,
    stable: Stability,
  ): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    return this.#withFile(f, p => this.#changes([p.id], () => writeFile(this.#io, this.#index, this.#writeGate, p, offset, data, stable)))
  }

  /** fsync of the whole file (the range does not matter to the kernel); an fsync error is EIO. */
  async commit(f: FileRef): Promise<{ before: Attr; after: Attr }> {
    return this.#withFile(f, p => commitFile(this.#io, this.#index, p))
  }

  async create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    // UNCHECKED on an existing file changes that file: its id is marked too.
    return this.#withDir(dir, d => this.#changes([d.id], async () => this.#made(await createFile(this.#core, d, name, mode, owner))))
  }

  async mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#withDir(dir, d => this.#changes([d.id], () => makeDir(this.#core, d, name, attr, owner)))
  }

  async symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#withDir(dir, d => this.#changes([d.id], () => makeSymlink(this.#core, d, name, target, attr, owner)))
  }

  async mknod(
    dir: FileRef,
    name: Buffer,
    type: 'block' | 'char' | 'socket' | 'fifo',
    rdev: { major: number; minor: number },
    attr: SetAttr,
    owner: Owner,
  ): Promise<Created> {
    return this.#withDir(dir, d => this.#changes([d.id], () => makeNode(this.#core, d, name, type, rdev, attr, owner)))
  }

  async remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#withDir(dir, d => this.#changes([d.id], () => removeEntry(d, name, this.#fx)))
  }

  async rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#withDir(dir, d => this.#changes([d.id], () => rmdirEntry(d, name, this.#fx)))
  }

  async rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer): Promise<{ from: DirChange; to: DirChange }> {
    return this.#withDir(fromDir, from => this.#withDir(toDir, to => this.#changes([from.id, to.id], () => renameEntry(this.#res, from, fromName, to, toName, this.#fx))))
  }

  async link(f: FileRef, dir: FileRef, name: Buffer): Promise<{ attr: Attr; dir: DirChange }> {
    return this.#with(f, p => {
      // link(2): hard links to directories are EPERM.
      if (p.type === 'dir') throw new VfsError('EPERM', 'hard link to a directory')
      return this.#withDir(dir, d => this.#changes([p.id, d.id], () => linkEntry(this.#res, p, d, name)))
    })
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    return this.#withDir(dir, d => readdirPage(this.#res, this.#snaps, this.#names, d, cookie, max))
  }

  /** The file system holding the object (with crossmnt, a mounted one: `df` in it shows it). */
  async fsstat(f: FileRef): Promise<FsStat> {
    return this.#with(f, fsStatOf)
  }

  async pathconf(f: FileRef): Promise<PathConf> {
    return this.#with(f, pathConfOf)
  }

  /**
   * RFC 1813 §1.6 (the namespace procedures are synchronous): fsync of each object, grouped
   * per object (dir-sync.ts). Thirty-two CREATEs in one directory share one or two fsyncs.
   */
  async commitMetadata(refs: readonly FileRef[]): Promise<void> {
    if (this.#closed) throw new VfsError('ESTALE', 'backend closed')
    // One request per object: a second for the same one (RENAME within a directory) would wait for a round of its own.
    const byId = new Map(refs.map(r => [r.id, r]))
    await Promise.all([...byId].map(([id, r]) => this.#meta.sync(id, r)))
  }

  /** Count of fsync rounds commitMetadata ran (for tests). */
  get metadataSyncs(): number {
    return this.#meta.rounds
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // Requests still running name paths by our fd numbers: close nothing under them.
    while (this.#inflight > 0) await new Promise<void>(resolve => this.#idle.push(resolve))
    clearInterval(this.#timer)
    await this.#index.close()
    await Promise.all([this.#paths.clear(), this.#io.clear()])
    fs.closeSync(this.#res.rootFd)
  }

  async #with<T>(f: FileRef, fn: (p: Pinned) => Promise<T>, dir = false): Promise<T> {
    if (this.#closed) throw new VfsError('ESTALE', 'backend closed')
    this.#inflight++
    try {
      const p = dir ? await this.#res.pinDir(f) : await this.#res.pin(f)
      try {
        return await fn(p)
      } finally {
        p.release()
      }
    } finally {
      if (--this.#inflight === 0) for (const wake of this.#idle.splice(0)) wake()
    }
  }

  async #withDir<T>(f: FileRef, fn: (p: Pinned) => Promise<T>): Promise<T> {
    return this.#with(f, fn, true)
  }

  /** READ/WRITE/COMMIT on anything but a regular file is EINVAL (the server checks the type first). */
  async #withFile<T>(f: FileRef, fn: (p: Pinned) => Promise<T>): Promise<T> {
    return this.#with(f, p => {
      if (p.type !== 'file') throw new VfsError('EINVAL', `not a regular file: ${p.type}`)
      return fn(p)
    })
  }

  /** An object removed meanwhile has nothing left to make durable (its removal is its parent's change). */
  async #fsyncObject(ref: FileRef): Promise<void> {
    try {
      await this.#with(ref, p => fsyncPinned(this.#io, p))
    } catch (err) {
      if (err instanceof VfsError && (err.code === 'ESTALE' || err.code === 'ENOENT')) return
      throw err
    }
  }

  #lstat(path: Buffer): fs.BigIntStats {
    try {
      return lstatNow(path)
    } catch (err) {
      throw toVfsError(err)
    }
  }

  /** Runs a change of the objects `ids`: what the name cache holds about them is not used afterwards (attr-cache.ts). */
  async #changes<T>(ids: readonly bigint[], run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } finally {
      for (const id of ids) this.#names.changed(id)
    }
  }

  #made(c: Created): Created {
    this.#names.changed(c.ref.id)
    return c
  }

  readonly #fx: Effects = {
    gone: (st) => {
      return this.#gone(st)
    },
    touched: (st) => {
      const id = this.#res.knownId(st)
      if (id !== null) this.#names.changed(id)
    },
  }

  readonly #gone = async (st: BigIntStats): Promise<void> => {
    // A device never seen has nothing of ours to drop.
    const id = this.#res.knownId(st)
    if (id === null) return
    // Freeing a file happens at its last close: at once for a small one, in the thread pool otherwise (awaited: the reply says the space is free).
    const small = isSmall(st)
    this.#snaps.drop(id)
    await Promise.all([this.#res.forget(id, small), this.#io.drop(id, small)])
  }
}
