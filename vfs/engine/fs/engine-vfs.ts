/*
 * The engine as a Vfs: NFS-shaped operations (file ids, generations, errno codes) over the
 * ext4-format parts. File ids are inode numbers and the handle generation is i_generation, so a
 * handle stays valid across restarts and renames and turns stale when the inode is reused.
 *
 * Each change runs in one transaction handle under the exclusive side of a lock, then waits for
 * its transaction to be durable *outside* the lock (a WRITE also writes its data blocks outside
 * it, with its handle still open: data-flights.ts): concurrent changes join the same transaction
 * and share its commit (group commit), and every reply that promises stability goes out only
 * after the commit that holds it (RFC 1813 §3.3: CREATE, REMOVE, RENAME... are synchronous).
 * All checks run before the first change; what can still fail midway (ENOSPC) is undone by hand,
 * as ext4 does, since a journal handle cannot roll back.
 */
import { VfsError } from '../../errors.ts'
import { checkName, checkNewName, checkOldName, isDot, isDotDot, NAME_MAX } from '../../names.ts'
import { checkSetAttr } from '../../set-attr-checks.ts'
import type {
  Attr, Caller, CreateMode, Created, DirChange, DirEntry, DirPage, FileRef, FileType, FsStat, Owner, PathConf,
  ReadResult, SetAttr, Stability, Timespec, Vfs, VfsCapabilities,
} from '../../types.ts'
import type { BlockDevice } from '../blockdev/block-device.ts'
import { FT } from '../format/dirent.ts'
import { blocksIn512, INODE_FLAGS, S_IFMT } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import type { Allocator } from '../alloc/allocator.ts'
import type { MetaTxn, TxnManager } from '../txn/txn.ts'
import { attrOf, encodeRdev, fileTypeOf, modeBitsOf } from './attr.ts'
import { toVfsError } from './errors.ts'
import { allocateData, blockSpan, MAX_IO, readData, readDataInto, truncateData, writeData, writeRuns } from './file-io.ts'
import { DataFlights } from './data-flights.ts'
import type { DataFlight } from './data-flights.ts'
import type { DirIndex, FileMap, InodeStore } from './parts.ts'
import { RwLock } from './rw-lock.ts'
import { DEFAULT_READ_POOL_BYTES, READ_BUFFER_SIZE, ReadBuffers } from '../../memory/read-buffers.ts'

export const ROOT_INO = 2
/** EXT4_LINK_MAX: links to a file; a directory past it counts 1 ("many", dir_nlink). */
export const LINK_MAX = 65000
const PATH_MAX = 4096
/** A symlink target shorter than i_block (60 bytes) lives in the inode ("fast" symlink). */
const FAST_SYMLINK_MAX = 59
const S_ISGID = 0o2000

const FT_OF: Record<FileType, number> = {
  file: FT.REG_FILE, dir: FT.DIR, symlink: FT.SYMLINK, block: FT.BLKDEV, char: FT.CHRDEV, socket: FT.SOCK, fifo: FT.FIFO,
}

export interface EngineParts {
  dev: BlockDevice
  txm: TxnManager
  alloc: Allocator
  inodes: InodeStore
  files: FileMap
  dirs: DirIndex
  blockSize: number
  /** s_first_ino: numbers below it (but root) are the file system's own (journal, resize...). */
  firstIno: number
  inodesCount: number
  /** Largest file the block map can address (ext4: 2^32 blocks). */
  maxFileSize: bigint
  /** FSSTAT's counters, read from the live superblock. */
  statfs(): Promise<{ blocks: number; freeBlocks: number; reservedBlocks: number; inodes: number; freeInodes: number }>
  /** Commit, checkpoint and close the device. */
  close(): Promise<void>
}

export interface EngineVfsOptions {
  readOnly?: boolean
  /** What an internal error does: 'remount-ro' (default) stops every later change. */
  errors?: 'remount-ro' | 'continue'
  log?: (msg: string) => void
  now?: () => Timespec
  /** Where READ data goes: buffers lent to the server and given back once the reply is sent. */
  readBuffers?: ReadBuffers
}

function systemNow(): Timespec {
  const ns = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n)
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) }
}

export class EngineVfs implements Vfs {
  readonly #p: EngineParts
  readonly #lock = new RwLock()
  /** WRITEs whose data is on its way to the device, the lock released (data-flights.ts). */
  readonly #flights = new DataFlights()
  readonly #now: () => Timespec
  readonly #errors: 'remount-ro' | 'continue'
  readonly #log: (msg: string) => void
  readonly #bufs: ReadBuffers
  #readOnly: boolean
  #rootGen = 0
  /** The last transaction that changed each file's data or size, for COMMIT (bounded: see #noteWrite). */
  readonly #lastTid = new Map<number, number>()
  /** The newest transaction a forgotten entry of #lastTid can have had. */
  #forgottenTid = 0
  /** Attributes of cached inode views (#viewAttr), dropped with the view. */
  readonly #viewAttrs = new WeakMap<Inode, Attr>()
  /** While frozen: changes wait on it before taking the lock, so reads go on meanwhile. */
  #frozen: Promise<void> | undefined
  #thawed: () => void = () => {}

  private constructor(parts: EngineParts, opts: EngineVfsOptions) {
    this.#p = parts
    this.#readOnly = opts.readOnly ?? false
    this.#errors = opts.errors ?? 'remount-ro'
    this.#log = opts.log ?? (() => {})
    this.#bufs = opts.readBuffers ?? new ReadBuffers(READ_BUFFER_SIZE, { maxBytes: DEFAULT_READ_POOL_BYTES })
    this.#now = opts.now ?? systemNow
  }

  static async open(parts: EngineParts, opts: EngineVfsOptions = {}): Promise<EngineVfs> {
    const vfs = new EngineVfs(parts, opts)
    vfs.#rootGen = (await parts.inodes.read(ROOT_INO)).generation
    return vfs
  }

  get readOnly(): boolean {
    return this.#readOnly
  }

  root(): FileRef {
    return { id: BigInt(ROOT_INO), gen: this.#rootGen }
  }

  capabilities(): VfsCapabilities {
    return {
      maxFileSize: this.#p.maxFileSize,
      timeDelta: { sec: 0, nsec: 1 },
      hardLinks: true,
      symlinks: true,
      deviceNodes: true,
      canSetTime: true,
    }
  }

  // ---- reading ----

  async getattr(f: FileRef): Promise<Attr> {
    return this.#read(async () => {
      const { ino, inode } = await this.#get(f, true)
      return this.#viewAttr(ino, inode)
    })
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    return this.#read(async () => {
      const d = await this.#getDir(dir, true)
      if (isDot(name)) return { ref: this.#ref(d.ino, d.inode), attr: this.#viewAttr(d.ino, d.inode) }
      if (!isDotDot(name)) checkName(name)
      let ino: number
      if (isDotDot(name) && d.ino === ROOT_INO) ino = ROOT_INO
      else {
        const hit = await this.#p.dirs.find(d.ino, d.inode, name)
        if (hit === undefined) throw new VfsError('ENOENT')
        ino = hit.ino
      }
      const inode = await this.#inodeOf(ino, true)
      return { ref: this.#ref(ino, inode), attr: this.#viewAttr(ino, inode) }
    })
  }

  async readlink(f: FileRef): Promise<Buffer> {
    return this.#read(async () => {
      const { ino, inode } = await this.#get(f, true)
      if ((inode.mode & S_IFMT) !== modeBitsOf('symlink')) throw new VfsError('EINVAL', 'not a symlink')
      if (inode.size > PATH_MAX) throw new VfsError('EIO', `symlink ${ino} claims ${inode.size} bytes`)
      // Fast when no block holds it, as ext4_inode_is_fast_symlink (an xattr block aside).
      const eaBlocks = inode.fileAcl !== 0 ? this.#p.blockSize / 512 : 0
      if (blocksIn512(inode, this.#p.blockSize) - eaBlocks === 0 && inode.size < 60) {
        return Buffer.from(inode.block.subarray(0, inode.size))
      }
      return readData(this.#p, ino, inode, 0, inode.size)
    })
  }

  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    return this.#read(async () => {
      const { ino, inode } = await this.#getType(f, 'file', true)
      if (offset < 0n || count < 0) throw new VfsError('EINVAL')
      const off = offset > BigInt(inode.size) ? inode.size : Number(offset)
      const want = Math.max(0, Math.min(count, MAX_IO, inode.size - off))
      if (want > 0) {
        // The blocks a WRITE has mapped but not yet filled hold their old contents: wait for it.
        const span = blockSpan(this.#p.blockSize, off, want)
        const busy = this.#flights.settled(ino, span.first, span.last)
        if (busy !== undefined) await busy
      }
      const loan = this.#bufs.take(want)
      let lent = false
      try {
        const data = await readDataInto(this.#p, ino, inode, off, loan.buf.subarray(0, want))
        const reply: ReadResult = { data, eof: off + data.length >= inode.size, attr: this.#attr(ino, inode) }
        // The pooled buffer goes to the socket by reference and comes back once the reply is sent.
        if (data.length > 0 && loan.release !== null) {
          reply.release = loan.release
          lent = true
        }
        return reply
      } finally {
        if (!lent) loan.release?.()
      }
    })
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    return this.#read(async () => {
      const d = await this.#getDir(dir, true)
      const page = await this.#p.dirs.list(d.ino, d.inode, cookie, max)
      const entries: DirEntry[] = []
      for (const e of page.entries) {
        const entry: DirEntry = { name: e.name, fileid: BigInt(e.ino), cookie: e.cookie }
        // Each entry's handle and attributes from its inode, under this one read lock: READDIRPLUS
        // then needs no lookup of each name (an htree search and a second lock) to find them.
        const inode = this.#cachedLive(e.ino) ?? await this.#inodeOf(e.ino, true).catch(() => undefined)
        if (inode !== undefined) {
          entry.ref = this.#ref(e.ino, inode)
          entry.attr = this.#viewAttr(e.ino, inode)
        }
        entries.push(entry)
      }
      return { entries, eof: page.eof }
    })
  }

  async fsstat(f: FileRef): Promise<FsStat> {
    return this.#read(async () => {
      await this.#get(f, true)
      const s = await this.#p.statfs()
      const bs = BigInt(this.#p.blockSize)
      const free = BigInt(s.freeBlocks)
      const avail = free > BigInt(s.reservedBlocks) ? free - BigInt(s.reservedBlocks) : 0n
      return {
        totalBytes: BigInt(s.blocks) * bs, freeBytes: free * bs, availBytes: avail * bs,
        totalFiles: BigInt(s.inodes), freeFiles: BigInt(s.freeInodes), availFiles: BigInt(s.freeInodes),
      }
    })
  }

  async pathconf(f: FileRef): Promise<PathConf> {
    await this.getattr(f)
    return { linkMax: LINK_MAX, nameMax: NAME_MAX, noTrunc: true, chownRestricted: true, caseInsensitive: false, casePreserving: true }
  }

  // ---- changing ----

  async setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    return this.#change(async (h) => {
      const { ino, inode } = await this.#get(f)
      checkSetAttr(fileTypeOf(inode.mode) ?? 'file', set)
      if (set.size !== undefined && set.size > this.#p.maxFileSize) throw new VfsError('EFBIG')
      const before = this.#attr(ino, inode)
      const now = this.#now()
      if (set.size !== undefined) {
        const size = Number(set.size)
        if (size !== inode.size) {
          // A WRITE still filling a partial block would undo the zeroing of its tail.
          await this.#flights.settled(ino)
          await truncateData(this.#p, h, ino, inode, size)
          inode.mtime = now
          this.#noteWrite(ino, h.tid)
        }
      }
      applyAttrs(inode, set, now)
      inode.ctime = now
      await this.#p.inodes.write(h, ino, inode)
      return { before, after: this.#attr(ino, inode) }
    })
  }

  async write(f: FileRef, offset: bigint, data: Buffer, stable: Stability, caller?: Caller): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    const sync = stable !== 'unstable'
    const out = await this.#change(async (h, later) => {
      h.caller = caller
      const { ino, inode } = await this.#getType(f, 'file')
      if (offset < 0n) throw new VfsError('EINVAL')
      const before = this.#attr(ino, inode)
      // A write of 0 bytes changes nothing, not even mtime (RFC 1813 §3.3.7).
      if (data.length === 0) return { count: 0, committed: stable, before, after: before }
      if (offset + BigInt(data.length) > this.#p.maxFileSize) throw new VfsError('EFBIG')
      const off = Number(offset)
      const span = blockSpan(this.#p.blockSize, off, data.length)
      // An earlier write into the same blocks finishes first (its read-modify-write of a partial
      // block, and the order of the two): rare, and it needs no lock to finish.
      const busy = this.#flights.settled(ino, span.first, span.last)
      if (busy !== undefined) await busy
      // Under the lock: allocation, extents, size and times. The data blocks themselves are
      // written once the lock is released, with the handle still open, so the commit that makes
      // these extents durable waits for them (ordered mode) while other requests go on.
      const runs = await allocateData(this.#p, h, ino, inode, off, data.length)
      const now = this.#now()
      inode.size = Math.max(inode.size, off + data.length)
      inode.mtime = now
      inode.ctime = now
      await this.#p.inodes.write(h, ino, inode)
      this.#noteWrite(ino, h.tid)
      const after = this.#attr(ino, inode)
      later(ino, span, () => writeRuns(this.#p, runs, off, data))
      return { count: data.length, committed: stable, before, after }
    }, sync)
    return out
  }

  /** The range does not matter: the file's last transaction and one device flush cover all of it. */
  async commit(f: FileRef): Promise<{ before: Attr; after: Attr }> {
    const attr = await this.getattr(f)
    const ino = Number(f.id)
    const tid = this.#lastTid.get(ino) ?? (this.#forgottenTid > 0 ? this.#forgottenTid : undefined)
    // Every WRITE changes the inode (mtime), so its data was on the device before its transaction
    // ended, and that transaction's commit flushes the device before its commit block: waiting for
    // the file's last transaction makes all its data and metadata durable.
    try {
      if (tid !== undefined) await this.#p.txm.waitDurable(tid)
    } catch (err) {
      // An aborted journal (damage found, or a failing device): the data is not known durable.
      throw this.#fail(err)
    }
    return { before: attr, after: attr }
  }

  async create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    return this.#change(async (h) => {
      h.caller = owner.caller ?? owner
      const d = await this.#getDir(dir)
      checkNewName(name)
      const hit = await this.#p.dirs.find(d.ino, d.inode, name)
      if (hit !== undefined) return this.#createExisting(h, d, hit.ino, mode)
      const set = mode.how === 'exclusive' ? {} : mode.attr
      checkSetAttr('file', set)
      const before = this.#attr(d.ino, d.inode)
      const made = await this.#newChild(h, d, name, 'file', set, owner, async (ino, inode) => {
        if (mode.how === 'exclusive') {
          // As knfsd: the verifier is kept in atime and mtime until the client sets them.
          inode.atime = { sec: mode.verifier.readUInt32BE(0), nsec: 0 }
          inode.mtime = { sec: mode.verifier.readUInt32BE(4), nsec: 0 }
        } else if (set.size !== undefined && set.size > 0n) {
          await truncateData(this.#p, h, ino, inode, Number(set.size))
        }
      })
      return { ...made, dir: { before, after: this.#attr(d.ino, d.inode) } }
    })
  }

  async mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#change(async (h) => {
      h.caller = owner.caller ?? owner
      const d = await this.#getDir(dir)
      checkNewName(name)
      checkSetAttr('dir', attr)
      if ((await this.#p.dirs.find(d.ino, d.inode, name)) !== undefined) throw new VfsError('EEXIST')
      const before = this.#attr(d.ino, d.inode)
      const made = await this.#newChild(h, d, name, 'dir', attr, owner, async (ino, inode) => {
        inode.linksCount = 2
        await this.#p.dirs.init(h, ino, inode, d.ino)
      })
      incDirLinks(d.inode)
      await this.#p.inodes.write(h, d.ino, d.inode)
      return { ...made, dir: { before, after: this.#attr(d.ino, d.inode) } }
    })
  }

  async symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#change(async (h) => {
      h.caller = owner.caller ?? owner
      const d = await this.#getDir(dir)
      checkNewName(name)
      checkSetAttr('symlink', attr)
      // As symlink(2) on Linux: empty is ENOENT, PATH_MAX or more is ENAMETOOLONG.
      if (target.length === 0) throw new VfsError('ENOENT', 'empty symlink target')
      if (target.length >= PATH_MAX) throw new VfsError('ENAMETOOLONG')
      if (target.includes(0)) throw new VfsError('EINVAL', 'NUL in symlink target')
      if ((await this.#p.dirs.find(d.ino, d.inode, name)) !== undefined) throw new VfsError('EEXIST')
      const before = this.#attr(d.ino, d.inode)
      const made = await this.#newChild(h, d, name, 'symlink', { ...attr, mode: attr.mode ?? 0o777 }, owner, async (ino, inode) => {
        if (target.length <= FAST_SYMLINK_MAX) {
          inode.flags &= ~INODE_FLAGS.EXTENTS
          inode.block.fill(0)
          target.copy(inode.block)
          inode.size = target.length
        } else {
          await writeData(this.#p, h, ino, inode, 0, target)
          inode.size = target.length
        }
      })
      return { ...made, dir: { before, after: this.#attr(d.ino, d.inode) } }
    })
  }

  async mknod(
    dir: FileRef, name: Buffer, type: 'block' | 'char' | 'socket' | 'fifo',
    rdev: { major: number; minor: number }, attr: SetAttr, owner: Owner,
  ): Promise<Created> {
    return this.#change(async (h) => {
      h.caller = owner.caller ?? owner
      const d = await this.#getDir(dir)
      checkNewName(name)
      checkSetAttr(type, attr)
      if ((await this.#p.dirs.find(d.ino, d.inode, name)) !== undefined) throw new VfsError('EEXIST')
      const before = this.#attr(d.ino, d.inode)
      const made = await this.#newChild(h, d, name, type, attr, owner, (_ino, inode) => {
        // Device numbers live in i_block, which is then no extent tree.
        inode.flags &= ~INODE_FLAGS.EXTENTS
        if (type === 'block' || type === 'char') encodeRdev(inode.block, rdev)
        else inode.block.fill(0)
        return Promise.resolve()
      })
      return { ...made, dir: { before, after: this.#attr(d.ino, d.inode) } }
    })
  }

  async remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#change(async (h) => {
      const { d, hit, inode } = await this.#entry(dir, name)
      // unlink(2) on Linux: a directory is EISDIR.
      if ((inode.mode & S_IFMT) === modeBitsOf('dir')) throw new VfsError('EISDIR')
      const before = this.#attr(d.ino, d.inode)
      await this.#p.dirs.remove(h, d.ino, d.inode, name)
      const now = this.#now()
      d.inode.mtime = d.inode.ctime = now
      await this.#p.inodes.write(h, d.ino, d.inode)
      await this.#dropLink(h, hit.ino, inode, now)
      return { before, after: this.#attr(d.ino, d.inode) }
    })
  }

  async rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#change(async (h) => {
      const { d, hit, inode } = await this.#entry(dir, name)
      if ((inode.mode & S_IFMT) !== modeBitsOf('dir')) throw new VfsError('ENOTDIR')
      if (!(await this.#p.dirs.isEmpty(hit.ino, inode))) throw new VfsError('ENOTEMPTY')
      const before = this.#attr(d.ino, d.inode)
      await this.#p.dirs.remove(h, d.ino, d.inode, name)
      const now = this.#now()
      decDirLinks(d.inode)
      d.inode.mtime = d.inode.ctime = now
      await this.#p.inodes.write(h, d.ino, d.inode)
      await this.#release(h, hit.ino, inode, now)
      return { before, after: this.#attr(d.ino, d.inode) }
    })
  }

  async link(f: FileRef, dir: FileRef, name: Buffer, caller?: Caller): Promise<{ attr: Attr; dir: DirChange }> {
    return this.#change(async (h) => {
      h.caller = caller
      const { ino, inode } = await this.#get(f)
      // link(2): hard links to directories are EPERM.
      if ((inode.mode & S_IFMT) === modeBitsOf('dir')) throw new VfsError('EPERM', 'hard link to a directory')
      const d = await this.#getDir(dir)
      checkNewName(name)
      if ((await this.#p.dirs.find(d.ino, d.inode, name)) !== undefined) throw new VfsError('EEXIST')
      if (inode.linksCount >= LINK_MAX) throw new VfsError('EMLINK')
      const before = this.#attr(d.ino, d.inode)
      await this.#p.dirs.add(h, d.ino, d.inode, name, ino, FT_OF[fileTypeOf(inode.mode) ?? 'file'])
      const now = this.#now()
      inode.linksCount++
      inode.ctime = now
      await this.#p.inodes.write(h, ino, inode)
      d.inode.mtime = d.inode.ctime = now
      await this.#p.inodes.write(h, d.ino, d.inode)
      return { attr: this.#attr(ino, inode), dir: { before, after: this.#attr(d.ino, d.inode) } }
    })
  }

  async rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, caller?: Caller): Promise<{ from: DirChange; to: DirChange }> {
    return this.#change(async (h) => {
      h.caller = caller
      const from = await this.#getDir(fromDir)
      const to = from.ino === Number(toDir.id) ? from : await this.#getDir(toDir)
      checkOldName(fromName)
      checkNewName(toName)
      const src = await this.#p.dirs.find(from.ino, from.inode, fromName)
      if (src === undefined) throw new VfsError('ENOENT')
      const moved = await this.#inodeOf(src.ino)
      const movedIsDir = (moved.mode & S_IFMT) === modeBitsOf('dir')
      const fromBefore = this.#attr(from.ino, from.inode)
      const toBefore = this.#attr(to.ino, to.inode)
      if (movedIsDir && from.ino !== to.ino && (await this.#isWithin(to.ino, src.ino))) throw new VfsError('EINVAL', 'rename into own subtree')
      const dst = await this.#p.dirs.find(to.ino, to.inode, toName)
      let victim: Inode | undefined
      if (dst !== undefined) {
        // Two names of one object (the same entry, or hard links): POSIX says do nothing.
        if (dst.ino === src.ino) return { from: { before: fromBefore, after: fromBefore }, to: { before: toBefore, after: toBefore } }
        victim = await this.#inodeOf(dst.ino)
        const victimIsDir = (victim.mode & S_IFMT) === modeBitsOf('dir')
        if (movedIsDir && !victimIsDir) throw new VfsError('ENOTDIR')
        if (!movedIsDir && victimIsDir) throw new VfsError('EISDIR')
        if (victimIsDir && !(await this.#p.dirs.isEmpty(dst.ino, victim))) throw new VfsError('ENOTEMPTY')
      }
      const now = this.#now()
      // The new name first: if the target directory cannot grow (ENOSPC) nothing has changed yet.
      if (dst !== undefined && victim !== undefined) {
        await this.#p.dirs.remove(h, to.ino, to.inode, toName)
        if ((victim.mode & S_IFMT) === modeBitsOf('dir')) {
          decDirLinks(to.inode)
          await this.#release(h, dst.ino, victim, now)
        } else {
          await this.#dropLink(h, dst.ino, victim, now)
        }
      }
      await this.#p.dirs.add(h, to.ino, to.inode, toName, src.ino, src.fileType)
      await this.#p.dirs.remove(h, from.ino, from.inode, fromName)
      if (movedIsDir && from.ino !== to.ino) {
        await this.#p.dirs.setParent(h, src.ino, moved, to.ino)
        decDirLinks(from.inode)
        incDirLinks(to.inode)
      }
      moved.ctime = now
      await this.#p.inodes.write(h, src.ino, moved)
      from.inode.mtime = from.inode.ctime = now
      to.inode.mtime = to.inode.ctime = now
      await this.#p.inodes.write(h, from.ino, from.inode)
      if (to.ino !== from.ino) await this.#p.inodes.write(h, to.ino, to.inode)
      return {
        from: { before: fromBefore, after: this.#attr(from.ino, from.inode) },
        to: { before: toBefore, after: this.#attr(to.ino, to.inode) },
      }
    })
  }

  async close(): Promise<void> {
    // Closed while frozen: the changes waiting go on first (and close commits them), not hang.
    if (this.#frozen !== undefined) await this.thaw().catch(() => undefined)
    await this.#lock.write(() => this.#p.close())
  }

  // ---- freezing (ext4_freeze / FIFREEZE) ----

  /**
   * Quiesce for a block-level copy (a snapshot): new changes wait (reads go on); the changes
   * running finish; the journal commits and checkpoints; needs_recovery is cleared and flushed.
   * When this resolves the device holds a clean file system with every change answered so far,
   * UNSTABLE writes included (their data reached the device before their transaction ended, and
   * the commit flushed it: as ext4's freeze syncs dirty data). Reads go on while frozen; thaw()
   * lets the waiting changes go. A read-only engine writes nothing: freezing it only holds changes.
   */
  async freeze(): Promise<void> {
    if (this.#frozen !== undefined) throw new VfsError('EBUSY')
    this.#frozen = new Promise<void>((resolve) => (this.#thawed = resolve))
    try {
      // A barrier: every change that passed the gate before it shut holds or waits for the lock
      // ahead of this, so once we hold it, every running change has ended its handle or is in its
      // data phase (a WRITE's data blocks), whose open handle the commit below waits for.
      await this.#lock.write(() => Promise.resolve())
      await this.#p.txm.freeze?.()
    } catch (err) {
      this.#open()
      throw this.#fail(err)
    }
  }

  /** Undoes freeze: needs_recovery set again (durably), then the waiting changes go. */
  async thaw(): Promise<void> {
    if (this.#frozen === undefined) throw new VfsError('EINVAL')
    try {
      await this.#p.txm.thaw?.()
    } catch (err) {
      throw this.#fail(err)
    } finally {
      this.#open()
    }
  }

  get frozen(): boolean {
    return this.#frozen !== undefined
  }

  #open(): void {
    this.#frozen = undefined
    this.#thawed()
  }

  // ---- internals ----

  /** Remember the file's last transaction; past 65,536 files, forget them all but their newest tid. */
  #noteWrite(ino: number, tid: number): void {
    this.#lastTid.delete(ino)
    this.#lastTid.set(ino, tid)
    if (this.#lastTid.size > 65536) {
      for (const t of this.#lastTid.values()) this.#forgottenTid = Math.max(this.#forgottenTid, t)
      this.#lastTid.clear()
    }
  }

  #attr(ino: number, inode: Inode): Attr {
    return attrOf(ino, inode, this.#p.blockSize)
  }

  /**
   * The attributes of a cached inode view (#inodeOf(ino, true)), made once per view: a view is
   * never changed (a change caches a new object), so its attributes hold as long as it does, and
   * GETATTR, LOOKUP and every READDIRPLUS entry of an unchanged file share one Attr. Only for
   * views: a change's own copy is changed between its before and after attributes.
   */
  #viewAttr(ino: number, inode: Inode): Attr {
    let attr = this.#viewAttrs.get(inode)
    if (attr === undefined) {
      attr = attrOf(ino, inode, this.#p.blockSize)
      this.#viewAttrs.set(inode, attr)
    }
    return attr
  }

  #ref(ino: number, inode: Inode): FileRef {
    return { id: BigInt(ino), gen: inode.generation }
  }

  async #read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await this.#lock.read(fn)
    } catch (err) {
      throw this.#fail(err)
    }
  }

  /**
   * One change: a handle under the exclusive lock, then (unless `durable` is false) its commit.
   * `later` (a WRITE's, as the last thing it does) hands over the file-data device writes: they run
   * after the lock is released and before the handle ends.
   */
  async #change<T>(fn: (h: MetaTxn, later: Later) => Promise<T>, durable = true): Promise<T> {
    if (this.#readOnly) throw new VfsError('EROFS')
    while (this.#frozen !== undefined) await this.#frozen
    // An error met while we waited may have made the engine read-only.
    if (this.readOnly) throw new VfsError('EROFS')
    let tid = 0
    let result: T
    // In an object: TypeScript does not see the closure below assign it.
    const pending: { h?: MetaTxn; data?: { flight: DataFlight; io: () => Promise<void> } } = {}
    const later: Later = (ino, span, io) => {
      pending.data = { flight: this.#flights.start(ino, span.first, span.last), io }
    }
    try {
      let queued = 0
      result = await this.#lock.write(async () => {
        const h = await this.#p.txm.begin()
        tid = h.tid
        pending.h = h
        try {
          return await fn(h, later)
        } catch (err) {
          if (pending.data !== undefined) this.#flights.end(pending.data.flight)
          delete pending.data
          // Damage or a failing device met half-way: this operation's changes are in the running
          // transaction, possibly half made. As ext4 with errors=remount-ro, abort the journal so
          // they never commit (the operations sharing the transaction fail too: none was answered).
          if (!(err instanceof VfsError) && this.#errors === 'remount-ro') this.#p.txm.abort(err)
          throw err
        } finally {
          if (pending.data === undefined) this.#p.txm.end(h)
          queued = this.#lock.writersWaiting
        }
      })
      if (pending.data !== undefined && pending.h !== undefined) await this.#dataPhase(pending.h, pending.data)
      // Changes queued behind this one join its transaction: the last of the burst asks for the
      // commit, so one commit (two flushes) carries them all rather than the first one alone.
      if (durable) await this.#p.txm.waitDurable(tid, { defer: queued > 0 })
    } catch (err) {
      throw this.#fail(err)
    }
    return result
  }

  /**
   * A WRITE's data blocks, outside the lock. The handle ends only after them, so no commit can
   * make the extents pointing at them durable first; a failed device write aborts the journal
   * before the handle ends, so those extents never commit at all (errors=remount-ro).
   */
  async #dataPhase(h: MetaTxn, data: { flight: DataFlight; io: () => Promise<void> }): Promise<void> {
    try {
      await data.io()
    } catch (err) {
      if (!(err instanceof VfsError) && this.#errors === 'remount-ro') this.#p.txm.abort(err)
      throw err
    } finally {
      this.#flights.end(data.flight)
      this.#p.txm.end(h)
    }
  }

  /** WRITEs in their data phase now, and the most at once so far (for counting tests). */
  get dataWritesInFlight(): { now: number; max: number } {
    return { now: this.#flights.size, max: this.#flights.maxInFlight }
  }

  /** VfsErrors pass; anything else is damage or a failing device: EIO, and read-only if so configured. */
  #fail(err: unknown): Error {
    if (err instanceof VfsError) return err
    const mapped = toVfsError(err)
    if (mapped.code === 'EIO' && this.#errors === 'remount-ro' && !this.#readOnly) {
      this.#readOnly = true
      this.#log(`engine: ${(err as Error).message}; the export is now read-only (errors=remount-ro)`)
    }
    return mapped
  }

  /**
   * Inode ino if it is live. view: the shared cached object, for readers that only look (never
   * change it); otherwise a copy the caller may change and write back.
   */
  async #inodeOf(ino: number, view = false): Promise<Inode> {
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > this.#p.inodesCount || (ino < this.#p.firstIno && ino !== ROOT_INO)) {
      throw new VfsError('ESTALE')
    }
    const inode = view ? ((this.#p.inodes.cached(ino) ?? await this.#p.inodes.peek(ino)) as Inode) : await this.#p.inodes.read(ino)
    if (inode.linksCount === 0 || inode.mode === 0) throw new VfsError('ESTALE')
    return inode
  }

  /** A live inode's cached view, without a promise; undefined when not cached or not live (ask #inodeOf). */
  #cachedLive(ino: number): Inode | undefined {
    const inode = this.#p.inodes.cached(ino) as Inode | undefined
    return inode === undefined || inode.linksCount === 0 || inode.mode === 0 ? undefined : inode
  }

  async #get(f: FileRef, view = false): Promise<{ ino: number; inode: Inode }> {
    if (f.id > BigInt(this.#p.inodesCount) || f.id < 1n) throw new VfsError('ESTALE')
    const ino = Number(f.id)
    const inode = await this.#inodeOf(ino, view)
    if (inode.generation !== f.gen) throw new VfsError('ESTALE')
    return { ino, inode }
  }

  async #getType(f: FileRef, type: FileType, view = false): Promise<{ ino: number; inode: Inode }> {
    const got = await this.#get(f, view)
    const actual = fileTypeOf(got.inode.mode)
    // As the other backends: READ, WRITE and COMMIT of anything but a regular file are EINVAL.
    if (actual !== type) throw new VfsError('EINVAL', `not a ${type}`)
    return got
  }

  async #getDir(f: FileRef, view = false): Promise<{ ino: number; inode: Inode }> {
    const got = await this.#get(f, view)
    if ((got.inode.mode & S_IFMT) !== modeBitsOf('dir')) throw new VfsError('ENOTDIR')
    return got
  }

  /** The existing entry `name` of `dir` (to remove it): the directory, what the entry says, its inode. */
  async #entry(dir: FileRef, name: Buffer): Promise<{ d: { ino: number; inode: Inode }; hit: { ino: number; fileType: number }; inode: Inode }> {
    const d = await this.#getDir(dir)
    checkOldName(name)
    const hit = await this.#p.dirs.find(d.ino, d.inode, name)
    if (hit === undefined) throw new VfsError('ENOENT')
    return { d, hit, inode: await this.#inodeOf(hit.ino) }
  }

  /** Is `dirIno` the directory `ancestor` or inside it? Walks `..` up to the root. */
  async #isWithin(dirIno: number, ancestor: number): Promise<boolean> {
    let cur = dirIno
    for (let depth = 0; depth < 65536; depth++) {
      if (cur === ancestor) return true
      if (cur === ROOT_INO) return false
      const inode = await this.#inodeOf(cur, true)
      const up = await this.#p.dirs.find(cur, inode, Buffer.from('..'))
      if (up === undefined) throw new VfsError('EIO', `directory ${cur} has no ..`)
      cur = up.ino
    }
    throw new VfsError('EIO', 'directory chain too deep (a loop?)')
  }

  /** Allocate, initialise and link a new inode; undone if linking it fails. */
  async #newChild(
    h: MetaTxn, d: { ino: number; inode: Inode }, name: Buffer, type: FileType, set: SetAttr, owner: Owner,
    init: (ino: number, inode: Inode) => Promise<void>,
  ): Promise<{ ref: FileRef; attr: Attr }> {
    const isDir = type === 'dir'
    let perm = (set.mode ?? (isDir ? 0o755 : 0o644)) & 0o7777
    let gid = set.gid ?? owner.gid
    // BSD group semantics under a setgid directory, as ext4's inode_init_owner.
    if ((d.inode.mode & S_ISGID) !== 0) {
      if (set.gid === undefined) gid = d.inode.gid
      if (isDir) perm |= S_ISGID
    }
    const now = this.#now()
    const ino = await this.#p.alloc.allocInode(h, d.ino, isDir)
    const inode = await this.#p.inodes.fresh(ino, modeBitsOf(type) | perm, { uid: set.uid ?? owner.uid, gid }, now)
    try {
      await init(ino, inode)
      applyAttrs(inode, { ...(set.atime === undefined ? {} : { atime: set.atime }), ...(set.mtime === undefined ? {} : { mtime: set.mtime }) }, now)
      await this.#p.inodes.write(h, ino, inode)
      await this.#p.dirs.add(h, d.ino, d.inode, name, ino, FT_OF[type])
    } catch (err) {
      // Give back what was taken: blocks (a slow symlink, a directory's first block) and the inode.
      await this.#p.files.truncate(h, ino, inode, 0).catch(() => {})
      inode.linksCount = 0
      inode.dtime = now.sec
      await this.#p.inodes.write(h, ino, inode).catch(() => {})
      await this.#p.alloc.freeInode(h, ino, isDir).catch(() => {})
      throw err
    }
    d.inode.mtime = d.inode.ctime = now
    await this.#p.inodes.write(h, d.ino, d.inode)
    return { ref: this.#ref(ino, inode), attr: this.#attr(ino, inode) }
  }

  async #createExisting(h: MetaTxn, d: { ino: number; inode: Inode }, ino: number, mode: CreateMode): Promise<Created> {
    const inode = await this.#inodeOf(ino)
    const isFile = fileTypeOf(inode.mode) === 'file'
    const dirAttr = this.#attr(d.ino, d.inode)
    const created = (): Created => ({ ref: this.#ref(ino, inode), attr: this.#attr(ino, inode), dir: { before: dirAttr, after: dirAttr } })
    // RFC 1813 §3.3.8: UNCHECKED on a regular file applies the attributes (size 0 truncates).
    if (mode.how === 'unchecked' && isFile) {
      checkSetAttr('file', mode.attr)
      const now = this.#now()
      if (mode.attr.size !== undefined && Number(mode.attr.size) !== inode.size) {
        await this.#flights.settled(ino)
        await truncateData(this.#p, h, ino, inode, Number(mode.attr.size))
        inode.mtime = now
      }
      applyAttrs(inode, mode.attr, now)
      inode.ctime = now
      await this.#p.inodes.write(h, ino, inode)
      return created()
    }
    // A retransmitted EXCLUSIVE create finds its own verifier in the times: success.
    if (mode.how === 'exclusive' && isFile && inode.atime.sec === mode.verifier.readUInt32BE(0) && inode.mtime.sec === mode.verifier.readUInt32BE(4)) {
      return created()
    }
    throw new VfsError('EEXIST')
  }

  /** One name fewer for a non-directory; at none, its blocks and inode are freed. */
  async #dropLink(h: MetaTxn, ino: number, inode: Inode, now: Timespec): Promise<void> {
    inode.ctime = now
    if (inode.linksCount > 1) {
      inode.linksCount--
      await this.#p.inodes.write(h, ino, inode)
      return
    }
    await this.#release(h, ino, inode, now)
  }

  /** Free an inode that has no name left (a file's last link, or an empty directory). */
  async #release(h: MetaTxn, ino: number, inode: Inode, now: Timespec): Promise<void> {
    const isDir = (inode.mode & S_IFMT) === modeBitsOf('dir')
    if (isDir) {
      // A directory's blocks are journaled metadata: revoke them, or a later checkpoint (or replay)
      // of their old contents would overwrite whatever file data the blocks hold next.
      const blocks = Math.ceil(inode.size / this.#p.blockSize)
      for (const run of await this.#p.files.map(ino, inode, 0, blocks)) {
        if (run.pblk !== 0) for (let i = 0; i < run.len; i++) h.revoke(run.pblk + i)
      }
    }
    if ((inode.flags & INODE_FLAGS.EXTENTS) !== 0) await this.#p.files.truncate(h, ino, inode, 0)
    inode.linksCount = 0
    inode.size = 0
    inode.dtime = now.sec
    await this.#p.inodes.write(h, ino, inode)
    await this.#p.alloc.freeInode(h, ino, isDir)
    this.#lastTid.delete(ino)
  }
}

/** How a change hands its file-data writes to run outside the lock (see #change). */
type Later = (ino: number, span: { first: number; last: number }, io: () => Promise<void>) => void

function applyAttrs(inode: Inode, set: SetAttr, now: Timespec): void {
  if (set.mode !== undefined) inode.mode = (inode.mode & S_IFMT) | (set.mode & 0o7777)
  if (set.uid !== undefined) inode.uid = set.uid
  if (set.gid !== undefined) inode.gid = set.gid
  if (set.atime !== undefined) inode.atime = set.atime === 'now' ? now : { sec: set.atime.sec, nsec: set.atime.nsec }
  if (set.mtime !== undefined) inode.mtime = set.mtime === 'now' ? now : { sec: set.mtime.sec, nsec: set.mtime.nsec }
}

/** ext4's dir_nlink: a directory with 65000 links or more counts 1, meaning "many". */
function incDirLinks(dir: Inode): void {
  if (dir.linksCount === 1) return
  dir.linksCount = dir.linksCount + 1 >= LINK_MAX ? 1 : dir.linksCount + 1
}

function decDirLinks(dir: Inode): void {
  if (dir.linksCount > 2) dir.linksCount--
}
