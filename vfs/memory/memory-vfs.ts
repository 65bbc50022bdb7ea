/*
 * The in-memory backend: a whole tree in process memory, for tests and for
 * `npm start`. Every operation finishes its change synchronously (before its
 * first await, of which there are none), so each is atomic with respect to
 * other requests and before/after attributes are exact.
 *
 * atime is never updated by READ ("noatime"): nothing here needs it, and it
 * would turn every read into a metadata change. SETATTR can still set it.
 */
// The Vfs contract is async, but every operation here completes synchronously. `async` stays so that
// a thrown VfsError becomes a rejection, as callers expect, rather than a synchronous throw.
/* eslint-disable @typescript-eslint/require-await */
import { VfsError } from '../errors.ts'
import type {
  Attr,
  ReadResult,
  CreateMode,
  Created,
  DirChange,
  DirPage,
  FileRef,
  FsStat,
  Owner,
  PathConf,
  SetAttr,
  Stability,
  Timespec,
  Vfs,
  VfsCapabilities,
} from '../types.ts'
import type { ChunkPool } from './chunk-pool.ts'
import { systemClock } from './clock.ts'
import { freezeTree } from './frozen-copy.ts'
import type { FrozenMemoryVfs } from './frozen-copy.ts'
import { createFile, insertEntry, LINK_MAX, makeDir, makeNode, makeSymlink, prepareNew } from './create.ts'
import { nameKey } from './directory.ts'
import { attrOf } from './inode.ts'
import type { DirInode, Inode } from './inode.ts'
import { InodeTable } from './inode-table.ts'
import { checkName, checkOldName, isDot, isDotDot, NAME_MAX } from '../names.ts'
import { readdirPage } from './readdir.ts'
import { renameEntry } from './rename.ts'
import { applySetAttr, checkSetAttr, MAX_FILE_SIZE } from './set-attr.ts'

export interface MemoryVfsOptions {
  /** Bytes of data (plus a nominal 256 bytes per inode) the tree may hold; default 64 GiB. */
  capacityBytes?: bigint
  /** Inodes the tree may hold; default 10 million. */
  maxFiles?: bigint
  /**
   * Where freed 1 MiB chunks wait for reuse (several backends may share one; the server trims
   * it when idle). Default: one pool for the process, up to 256 MiB.
   */
  chunkPool?: ChunkPool
  /** The clock for timestamps (tests pass a fake one). */
  now?: () => Timespec
  /**
   * Permission bits of the root directory. An in-memory tree has no host
   * owner, so the default is 0o1777 (like /tmp): every user may create
   * entries and only owners may remove them, and root-squashed clients can
   * still write.
   */
  rootMode?: number
}

/** Larger reads are short (legal, RFC 1813 §3.3.6), so a sparse file cannot make us allocate gigabytes. */
const MAX_READ = 16 * 1024 * 1024

function refOf(ino: Inode): FileRef {
  return { id: ino.id, gen: ino.gen }
}

export class MemoryVfs implements Vfs {
  readonly #table: InodeTable
  readonly #clock: () => Timespec
  readonly #root: DirInode

  constructor(options: MemoryVfsOptions = {}) {
    this.#table = new InodeTable({
      capacityBytes: options.capacityBytes ?? 64n * 1024n ** 3n,
      maxFiles: options.maxFiles ?? 10_000_000n,
      ...(options.chunkPool === undefined ? {} : { chunkPool: options.chunkPool }),
    })
    this.#clock = options.now ?? systemClock()
    this.#root = this.#table.newDir(options.rootMode ?? 0o1777, { uid: 0, gid: 0 }, this.#now(), null)
  }

  root(): FileRef {
    return refOf(this.#root)
  }

  capabilities(): VfsCapabilities {
    return {
      maxFileSize: MAX_FILE_SIZE,
      timeDelta: { sec: 0, nsec: 1 },
      hardLinks: true,
      symlinks: true,
      deviceNodes: true,
      canSetTime: true,
    }
  }

  async getattr(f: FileRef): Promise<Attr> {
    return attrOf(this.#table.get(f))
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    const d = this.#table.getDir(dir)
    let ino: Inode
    if (isDot(name)) ino = d
    else if (isDotDot(name)) ino = this.#table.byId(d.parent)
    else ino = this.#child(d, name)
    return { ref: refOf(ino), attr: attrOf(ino) }
  }

  async setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    const ino = this.#table.get(f)
    checkSetAttr(ino.type, set)
    const before = attrOf(ino)
    applySetAttr(this.#table, ino, set, this.#now())
    return { before, after: attrOf(ino) }
  }

  async readlink(f: FileRef): Promise<Buffer> {
    const ino = this.#table.get(f)
    if (ino.type !== 'symlink') throw new VfsError('EINVAL', 'not a symlink')
    return Buffer.from(ino.target)
  }

  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    const file = this.#table.getFile(f)
    if (offset < 0n || count < 0) throw new VfsError('EINVAL')
    const { data, release } = file.data.readLent(offset, Math.min(count, MAX_READ))
    // RFC 1813 §3.3.6: eof when the data returned reaches the end of the file.
    const eof = offset + BigInt(data.length) >= file.data.size
    return release === undefined ? { data, eof, attr: attrOf(file) } : { data, eof, attr: attrOf(file), release }
  }

  async write(
    f: FileRef,
    offset: bigint,
    data: Buffer,
    stable: Stability,
  ): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    const file = this.#table.getFile(f)
    if (offset < 0n) throw new VfsError('EINVAL')
    const before = attrOf(file)
    // A write of 0 bytes changes nothing, not even mtime (RFC 1813 §3.3.7).
    if (data.length === 0) return { count: 0, committed: stable, before, after: attrOf(file) }
    if (offset + BigInt(data.length) > MAX_FILE_SIZE) throw new VfsError('EFBIG')
    // All or nothing: reserve the whole growth before copying a byte.
    this.#table.reserve(BigInt(file.data.growthFor(offset, data.length)), 0n)
    const used = file.data.used
    file.data.write(offset, data)
    this.#table.account(BigInt(file.data.used - used))
    const now = this.#now()
    file.mtime = now
    file.ctime = now
    // Memory is as durable as this process gets, so every level is already met.
    return { count: data.length, committed: stable, before, after: attrOf(file) }
  }

  /** Nothing to flush: the range (offset, count) does not matter. */
  async commit(f: FileRef): Promise<{ before: Attr; after: Attr }> {
    const file = this.#table.getFile(f)
    return { before: attrOf(file), after: attrOf(file) }
  }

  async create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    return createFile(this.#table, this.#now(), dir, name, mode, owner)
  }

  async mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return makeDir(this.#table, this.#now(), dir, name, attr, owner)
  }

  async symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return makeSymlink(this.#table, this.#now(), dir, name, target, attr, owner)
  }

  async mknod(
    dir: FileRef,
    name: Buffer,
    type: 'block' | 'char' | 'socket' | 'fifo',
    rdev: { major: number; minor: number },
    attr: SetAttr,
    owner: Owner,
  ): Promise<Created> {
    return makeNode(this.#table, this.#now(), dir, name, type, rdev, attr, owner)
  }

  async remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    const d = this.#table.getDir(dir)
    checkOldName(name)
    const ino = this.#child(d, name)
    // unlink(2) on Linux: a directory is EISDIR.
    if (ino.type === 'dir') throw new VfsError('EISDIR')
    return this.#unlinkEntry(d, name, ino)
  }

  async rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    const d = this.#table.getDir(dir)
    checkOldName(name)
    const ino = this.#child(d, name)
    if (ino.type !== 'dir') throw new VfsError('ENOTDIR')
    if (ino.dir.count > 0) throw new VfsError('ENOTEMPTY')
    const change = this.#unlinkEntry(d, name, ino)
    d.nlink--
    return { before: change.before, after: attrOf(d) }
  }

  async rename(
    fromDir: FileRef,
    fromName: Buffer,
    toDir: FileRef,
    toName: Buffer,
  ): Promise<{ from: DirChange; to: DirChange }> {
    return renameEntry(this.#table, this.#now(), fromDir, fromName, toDir, toName)
  }

  async link(f: FileRef, dir: FileRef, name: Buffer): Promise<{ attr: Attr; dir: DirChange }> {
    const ino = this.#table.get(f)
    // link(2): hard links to directories are EPERM.
    if (ino.type === 'dir') throw new VfsError('EPERM', 'hard link to a directory')
    const d = prepareNew(this.#table, dir, name, null, {})
    if (ino.nlink >= LINK_MAX) throw new VfsError('EMLINK')
    const before = attrOf(d)
    const now = this.#now()
    insertEntry(d, name, ino, now)
    ino.nlink++
    ino.ctime = now
    return { attr: attrOf(ino), dir: { before, after: attrOf(d) } }
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    return readdirPage(this.#table, this.#table.getDir(dir), cookie, max)
  }

  async fsstat(f: FileRef): Promise<FsStat> {
    this.#table.get(f)
    return this.#statfs()
  }

  #statfs(): FsStat {
    const { capacityBytes, maxFiles } = this.#table.limits
    const freeBytes = capacityBytes > this.#table.usedBytes ? capacityBytes - this.#table.usedBytes : 0n
    const freeFiles = maxFiles > this.#table.fileCount ? maxFiles - this.#table.fileCount : 0n
    return { totalBytes: capacityBytes, freeBytes, availBytes: freeBytes, totalFiles: maxFiles, freeFiles, availFiles: freeFiles }
  }

  async pathconf(f: FileRef): Promise<PathConf> {
    this.#table.get(f)
    return {
      linkMax: LINK_MAX,
      nameMax: NAME_MAX,
      noTrunc: true,
      chownRestricted: true,
      caseInsensitive: false,
      casePreserving: true,
    }
  }

  async close(): Promise<void> {
    this.#table.clear()
  }

  /**
   * A read-only copy of the whole tree as it is now, for a consistent backup (frozen-copy.ts:
   * metadata copied, file chunks shared copy-on-write). release() it when done.
   */
  freeze(): FrozenMemoryVfs {
    return freezeTree(this.#table, this.#root, this.capabilities(), this.#statfs())
  }

  /** A fresh Timespec from the clock, so nothing we keep aliases the clock's object. */
  #now(): Timespec {
    const t = this.#clock()
    return { sec: t.sec, nsec: t.nsec }
  }

  #child(d: DirInode, name: Buffer): Inode {
    checkName(name)
    const slot = d.dir.get(nameKey(name))
    if (slot === undefined) throw new VfsError('ENOENT')
    return this.#table.byId(slot.id)
  }

  #unlinkEntry(d: DirInode, name: Buffer, ino: Inode): DirChange {
    const before = attrOf(d)
    const now = this.#now()
    d.dir.delete(nameKey(name))
    this.#table.unlink(ino, now)
    d.mtime = now
    d.ctime = now
    return { before, after: attrOf(d) }
  }
}
