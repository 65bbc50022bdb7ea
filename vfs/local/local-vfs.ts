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
 * Mount points below the export are not crossed: LOOKUP of one is EACCES,
 * READDIR lists it with a fileid marked foreign (bit 63) and no handle.
 */
import fs from 'node:fs'
import { VfsError } from '../errors.ts'
import { checkName, checkNewName, checkOldName, isDot, isDotDot } from '../memory/names.ts'
import type {
  Attr, CreateMode, Created, DirChange, DirPage, FileRef, FsStat, Owner, PathConf, SetAttr, Stability, Vfs, VfsCapabilities,
} from '../types.ts'
import { fileType, genFromBirth, randomGen, toAttr } from './attr.ts'
import { createFile, makeDir, makeNode, makeSymlink } from './create.ts'
import type { LocalCore } from './create.ts'
import { FdCache } from './fd-cache.ts'
import { HandleIndex } from './handle-index.ts'
import { IoFiles } from './io-files.ts'
import { DirSnapshots, readdirPage } from './readdir.ts'
import { Resolver } from './resolver.ts'
import type { Pinned } from './resolver.ts'
import { applySetAttr, MAX_FILE_SIZE } from './set-attr.ts'
import {
  fdatasync, fdPath, fstat, fsync, link, lstat, PIN_DIR_FLAGS, pread, pwrite, readlinkBytes, rename, rmdir, statfs,
  toVfsError, unlink,
} from './sys.ts'

export interface LocalVfsOptions {
  /** The host directory to export (symlinks in this path are resolved once, at start). */
  root: string
  /** Where this export's handle index lives, e.g. `<server state>/local/<export id>/`; created if missing. */
  stateDir: string
  /** Cross into file systems mounted below the root. Not supported yet: true throws ENOTSUP. */
  crossmnt?: boolean
  /** Entries a fallback search for an unknown inode may visit (default 1,000,000). */
  searchLimit?: number
  /** Cached O_PATH fds of files and directories (default 256; closed after 5 s idle, reopened after 10 s). */
  pathFds?: number
  /** Cached read/write fds (default 128; closed after 2 s idle). */
  ioFds?: number
  /** Directory entries kept in READDIR snapshots, over all directories (default 1,000,000). */
  snapshotEntries?: number
}

export interface LocalVfsStats {
  /** Directory reads for READDIR snapshots. */
  snapshotBuilds: number
  /** Fallback searches of the tree. */
  searches: number
  pathFds: number
  ioFds: number
  indexEntries: number
}

/** Larger reads are short (legal, RFC 1813 §3.3.6), so one request cannot make us allocate without bound. */
const MAX_READ = 16 * 1024 * 1024
const SWEEP_MS = 1000
/** statfs f_type values with a known link limit. */
const LINK_MAX: ReadonlyMap<number, number> = new Map([
  [0xef53, 65000], // ext2/3/4
  [0x9123683e, 65535], // btrfs
  [0x58465342, 2147483647], // xfs
  [0x01021994, 2147483647], // tmpfs
])

export class LocalVfs implements Vfs {
  readonly #res: Resolver
  readonly #index: HandleIndex
  readonly #paths: FdCache
  readonly #io: IoFiles
  readonly #snaps: DirSnapshots
  readonly #core: LocalCore
  readonly #timer: NodeJS.Timeout
  #closed = false

  constructor(o: LocalVfsOptions) {
    if (o.crossmnt === true) throw new VfsError('ENOTSUP', 'crossmnt is not supported by the local backend')
    const rootFd = fs.openSync(o.root, PIN_DIR_FLAGS & ~fs.constants.O_NOFOLLOW)
    const rootSt = fs.fstatSync(rootFd, { bigint: true })
    const birth = genFromBirth(rootSt)
    this.#index = new HandleIndex(o.stateDir, rootSt.ino, birth, randomGen)
    this.#paths = new FdCache({ max: o.pathFds ?? 256, idleMs: 5000, maxAgeMs: 10_000 })
    const ioCache = new FdCache({ max: o.ioFds ?? 128, idleMs: 2000, maxAgeMs: 60_000 })
    this.#io = new IoFiles(ioCache)
    this.#res = new Resolver({ rootFd, rootSt, rootGen: birth ?? this.#index.rootGen, index: this.#index, cache: this.#paths, searchLimit: o.searchLimit ?? 1_000_000 })
    this.#snaps = new DirSnapshots(o.snapshotEntries ?? 1_000_000)
    this.#core = { res: this.#res, io: this.#io, isRoot: process.getuid?.() === 0 }
    this.#timer = setInterval(() => {
      this.#paths.sweep()
      ioCache.sweep()
    }, SWEEP_MS).unref()
  }

  root(): FileRef {
    return { id: this.#res.rootIno, gen: this.#res.rootGen }
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
    }
  }

  async getattr(f: FileRef): Promise<Attr> {
    return this.#with(f, p => Promise.resolve(toAttr(p.st, p.gen)))
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    return this.#withDir(dir, async d => {
      checkName(name)
      if (isDot(name)) return { ref: { id: d.ino, gen: d.gen }, attr: toAttr(d.st, d.gen) }
      if (isDotDot(name)) {
        // `..` of the export root is the root; elsewhere the real parent, pinned like any ref (so never outside).
        const up = d.ino === this.#res.rootIno ? d.st : await this.#lstat(fdPath(d.fd, name))
        const ref = { id: up.ino, gen: this.#res.genOf(up) }
        return { ref, attr: await this.getattr(ref) }
      }
      const st = await this.#lstat(fdPath(d.fd, name))
      if (st.dev !== this.#res.rootDev) throw new VfsError('EACCES', 'mount point: not crossed without crossmnt')
      const gen = this.#res.note(d.ino, name, st)
      return { ref: { id: st.ino, gen }, attr: toAttr(st, gen) }
    })
  }

  async setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    return this.#with(f, async p => ({ before: toAttr(p.st, p.gen), after: toAttr(await applySetAttr(this.#io, p, set), p.gen) }))
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

  async read(f: FileRef, offset: bigint, count: number): Promise<{ data: Buffer; eof: boolean; attr: Attr }> {
    return this.#withFile(f, async p => {
      if (offset < 0n || count < 0) throw new VfsError('EINVAL')
      const io = await this.#io.acquire(p, false)
      try {
        const buf = Buffer.allocUnsafe(Math.min(count, MAX_READ))
        let n = 0
        while (n < buf.length) {
          const got = await pread(io.fd, buf.subarray(n), offset + BigInt(n))
          if (got === 0) break
          n += got
        }
        const st = await fstat(io.fd)
        // RFC 1813 §3.3.6: eof when the data returned reaches the end of the file.
        return { data: buf.subarray(0, n), eof: offset + BigInt(n) >= st.size, attr: toAttr(st, p.gen) }
      } catch (err) {
        throw toVfsError(err)
      } finally {
        this.#io.release(io)
      }
    })
  }

  async write(
    f: FileRef,
    offset: bigint,
    data: Buffer,
    stable: Stability,
  ): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    return this.#withFile(f, async p => {
      if (offset < 0n) throw new VfsError('EINVAL')
      const before = toAttr(p.st, p.gen)
      // A write of 0 bytes changes nothing, not even mtime (RFC 1813 §3.3.7).
      if (data.length === 0) return { count: 0, committed: stable, before, after: before }
      if (offset + BigInt(data.length) > MAX_FILE_SIZE) throw new VfsError('EFBIG')
      const io = await this.#io.acquire(p, true)
      try {
        let n = 0
        while (n < data.length) n += await pwrite(io.fd, data.subarray(n), offset + BigInt(n))
        // DATA_SYNC and FILE_SYNC are on stable storage before the reply (RFC 1813 §3.3.7), index included.
        if (stable !== 'unstable') await this.#sync(io.fd, p.ino, stable === 'file_sync')
        return { count: n, committed: stable, before, after: toAttr(await fstat(io.fd), p.gen) }
      } catch (err) {
        throw toVfsError(err)
      } finally {
        this.#io.release(io)
      }
    })
  }

  /** fsync of the whole file (the range does not matter to the kernel); an fsync error is EIO. */
  async commit(f: FileRef): Promise<{ before: Attr; after: Attr }> {
    return this.#withFile(f, async p => {
      const io = await this.#io.acquire(p, false)
      try {
        await this.#sync(io.fd, p.ino, true)
        return { before: toAttr(p.st, p.gen), after: toAttr(await fstat(io.fd), p.gen) }
      } catch (err) {
        throw toVfsError(err)
      } finally {
        this.#io.release(io)
      }
    })
  }

  async create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    return this.#withDir(dir, d => createFile(this.#core, d, name, mode, owner))
  }

  async mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#withDir(dir, d => makeDir(this.#core, d, name, attr, owner))
  }

  async symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#withDir(dir, d => makeSymlink(this.#core, d, name, target, attr, owner))
  }

  async mknod(
    dir: FileRef,
    name: Buffer,
    type: 'block' | 'char' | 'socket' | 'fifo',
    rdev: { major: number; minor: number },
    attr: SetAttr,
    owner: Owner,
  ): Promise<Created> {
    return this.#withDir(dir, d => makeNode(this.#core, d, name, type, rdev, attr, owner))
  }

  async remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#withDir(dir, async d => {
      checkOldName(name)
      const st = await this.#lstat(fdPath(d.fd, name))
      // unlink(2) on Linux: a directory is EISDIR.
      if (fileType(st.mode) === 'dir') throw new VfsError('EISDIR')
      await this.#call(unlink(fdPath(d.fd, name)))
      if (st.nlink <= 1n) this.#gone(st.ino)
      return { before: toAttr(d.st, d.gen), after: toAttr(await fstat(d.fd), d.gen) }
    })
  }

  async rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#withDir(dir, async d => {
      checkOldName(name)
      const st = await this.#lstat(fdPath(d.fd, name))
      if (fileType(st.mode) !== 'dir') throw new VfsError('ENOTDIR')
      await this.#call(rmdir(fdPath(d.fd, name)))
      this.#gone(st.ino)
      return { before: toAttr(d.st, d.gen), after: toAttr(await fstat(d.fd), d.gen) }
    })
  }

  async rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer): Promise<{ from: DirChange; to: DirChange }> {
    return this.#withDir(fromDir, from => this.#withDir(toDir, async to => {
      checkOldName(fromName)
      checkNewName(toName)
      const src = await this.#lstat(fdPath(from.fd, fromName))
      const dst = await lstat(fdPath(to.fd, toName)).catch(() => null)
      try {
        // rename(2) over the pinned parents: POSIX semantics, EINVAL into its own subtree.
        await rename(fdPath(from.fd, fromName), fdPath(to.fd, toName))
      } catch (err) {
        // "ENOTEMPTY or EEXIST: newpath is a nonempty directory" (rename(2)); say it one way.
        throw toVfsError((err as { code?: unknown }).code === 'EEXIST' ? new VfsError('ENOTEMPTY') : err)
      }
      this.#res.note(to.ino, toName, src)
      if (dst !== null && dst.ino !== src.ino && (fileType(dst.mode) === 'dir' || dst.nlink <= 1n)) this.#gone(dst.ino)
      return {
        from: { before: toAttr(from.st, from.gen), after: toAttr(await fstat(from.fd), from.gen) },
        to: { before: toAttr(to.st, to.gen), after: toAttr(await fstat(to.fd), to.gen) },
      }
    }))
  }

  async link(f: FileRef, dir: FileRef, name: Buffer): Promise<{ attr: Attr; dir: DirChange }> {
    return this.#with(f, async p => {
      // link(2): hard links to directories are EPERM.
      if (p.type === 'dir') throw new VfsError('EPERM', 'hard link to a directory')
      return this.#withDir(dir, async d => {
        checkNewName(name)
        // link(2) does not follow /proc/self/fd magic links: link by the file's name in its parent.
        const { parent, name: oldName } = await this.#res.entryOf(p)
        try {
          await this.#call(link(fdPath(parent.fd, oldName), fdPath(d.fd, name)))
        } finally {
          parent.release()
        }
        return { attr: toAttr(await fstat(p.fd), p.gen), dir: { before: toAttr(d.st, d.gen), after: toAttr(await fstat(d.fd), d.gen) } }
      })
    })
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    return this.#withDir(dir, d => readdirPage(this.#res, this.#snaps, d, cookie, max))
  }

  async fsstat(f: FileRef): Promise<FsStat> {
    return this.#with(f, async () => {
      const s = await this.#call(statfs(fdPath(this.#res.rootFd)))
      return {
        totalBytes: s.blocks * s.bsize,
        freeBytes: s.bfree * s.bsize,
        availBytes: s.bavail * s.bsize,
        totalFiles: s.files,
        freeFiles: s.ffree,
        availFiles: s.ffree,
      }
    })
  }

  async pathconf(f: FileRef): Promise<PathConf> {
    return this.#with(f, async () => {
      const s = await this.#call(statfs(fdPath(this.#res.rootFd)))
      return {
        linkMax: LINK_MAX.get(Number(s.type)) ?? 32000,
        nameMax: 255,
        noTrunc: true,
        chownRestricted: true,
        caseInsensitive: false,
        casePreserving: true,
      }
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    await this.#index.close()
    this.#paths.clear()
    this.#io.clear()
    fs.closeSync(this.#res.rootFd)
  }

  async #with<T>(f: FileRef, fn: (p: Pinned) => Promise<T>): Promise<T> {
    const p = await this.#res.pin(f)
    try {
      return await fn(p)
    } finally {
      p.release()
    }
  }

  async #withDir<T>(f: FileRef, fn: (p: Pinned) => Promise<T>): Promise<T> {
    const p = await this.#res.pinDir(f)
    try {
      return await fn(p)
    } finally {
      p.release()
    }
  }

  /** READ/WRITE/COMMIT on anything but a regular file is EINVAL (the server checks the type first). */
  async #withFile<T>(f: FileRef, fn: (p: Pinned) => Promise<T>): Promise<T> {
    return this.#with(f, p => {
      if (p.type !== 'file') throw new VfsError('EINVAL', `not a regular file: ${p.type}`)
      return fn(p)
    })
  }

  async #lstat(path: Buffer): Promise<fs.BigIntStats> {
    return this.#call(lstat(path))
  }

  async #call<T>(p: Promise<T>): Promise<T> {
    try {
      return await p
    } catch (err) {
      throw toVfsError(err)
    }
  }

  /** fsync (or fdatasync) plus the handle index. After an fsync error the fd is closed: the data may be lost, report EIO. */
  async #sync(fd: number, ino: bigint, full: boolean): Promise<void> {
    const index = this.#index.flush()
    try {
      await (full ? fsync(fd) : fdatasync(fd))
    } catch (err) {
      this.#io.drop(ino)
      await index.catch(() => undefined)
      throw new VfsError('EIO', 'fsync failed', { cause: err })
    }
    // The index only speeds resolution up (a lost entry is found again by search): its failure fails no write.
    await index.catch(() => undefined)
  }

  #gone(ino: bigint): void {
    this.#res.forget(ino)
    this.#io.drop(ino)
    this.#snaps.drop(ino)
  }
}
