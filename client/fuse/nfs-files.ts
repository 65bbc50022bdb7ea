/*
 * Open files and directories of the FUSE mount. A FUSE file handle is an
 * NfsFile (the client's data path: block cache, read-ahead, delayed write),
 * opened by NFS handle with close-to-open revalidation. The kernel's page
 * cache is kept across opens only while the file is unchanged since we
 * last described it (FOPEN_KEEP_CACHE); otherwise its cached attributes are
 * invalidated before the open completes, so the size it reads to is the
 * new one. FLUSH (every close(2)) and FSYNC write out and COMMIT; RELEASE
 * closes. Directory handles hold one listing, read at offset 0 and served
 * from memory for the offsets that follow (offset = index + 1).
 *
 * An open file or directory acts as its opener (Linux's open context):
 * reads, delayed writes, COMMIT and READDIR go with the credential of the
 * caller that opened it, whoever the kernel names in later requests (it
 * sends RELEASE, and page cache writes, as uid 0).
 */
import { createmode3 } from '../../xdr/generated/nfs3.ts'
import { sattr } from '../attrs.ts'
import { isNfsError } from '../errors.ts'
import type { NfsFile } from '../file.ts'
import { openFh } from '../file-fh.ts'
import { withCred } from '../identity.ts'
import { listDir, listDirPlus } from '../readdir.ts'
import type { DirEntryPlus } from '../readdir.ts'
import { noteCreated } from '../walk.ts'
import type { Entry } from './abi.ts'
import type { Caller } from './callers.ts'
import { FOPEN_KEEP_CACHE, NOTIFY_INVAL_ENTRY, NOTIFY_INVAL_INODE, invalEntryOut, S_IFDIR, direntSize, direntType, direntplusSize, entryOut, invalInodeOut, openOut, putDirent, putDirentplus, writeOut } from './abi.ts'
import { FuseError, typeBits } from './convert.ts'
import type { Inode } from './inodes.ts'
import type { NfsFs } from './nfs-fs.ts'
import { stampOf } from './nfs-fs.ts'
import type { Reply } from './session.ts'

const O_ACCMODE = 3
const O_EXCL = 0o200

interface OpenFile {
  node: Inode
  file: NfsFile
  writable: boolean
  opener: Caller
}

interface OpenDir {
  node: Inode
  entries: DirEntryPlus[] | null
  /** The entries' names as sent (encoded once per listing, not per request). */
  names: Buffer[]
  opener: Caller
}

export interface Notifier {
  notify(code: number, body: Buffer): boolean
  /** One the kernel may take only once a lock is free that a request we are to answer holds (session.ts). */
  notifyAsync(code: number, body: Buffer): Promise<boolean>
}

export class NfsFiles {
  private readonly fs: NfsFs
  private readonly notifier: Notifier
  private readonly files = new Map<bigint, OpenFile>()
  private readonly dirs = new Map<bigint, OpenDir>()
  private next = 1n

  constructor(fs: NfsFs, notifier: Notifier) {
    this.fs = fs
    this.notifier = notifier
  }

  private file(fh: bigint): OpenFile {
    const f = this.files.get(fh)
    if (f === undefined) throw new FuseError('EBADF')
    return f
  }

  /** Register an open file; the kernel owns it once the reply is sent (closed if dropped). */
  private track(node: Inode, file: NfsFile, writable: boolean, opener: Caller): { id: bigint; dropped: () => void } {
    const id = this.next++
    this.files.set(id, { node, file, writable, opener })
    node.opens++
    this.fs.openFiles++
    return { id, dropped: () => void this.closeFile(id) }
  }

  /** The NFS handle of an open file (what its locks name); EBADF for an unknown one. */
  handleOf(fh: bigint): Buffer {
    return this.file(fh).node.fh
  }

  /** The caller that opened a file handle (an ftruncate acts as it), if the handle is known. */
  openerOf(fh: bigint): Caller | undefined {
    return this.files.get(fh)?.opener
  }

  /** OPEN as who: the server's ACCESS answer first (nfs_may_open), then the file with who as its opener. */
  async open(who: Caller, node: Inode, flags: number): Promise<Reply> {
    const writable = (flags & O_ACCMODE) !== 0
    await this.fs.mayOpen(who, node, flags)
    await this.fs.settleAttrs(node)
    const file = await openFh(this.fs.client.files, node.fh, writable ? 'r+' : 'r', { revalidated: true, ...withCred(who.cred) })
    const a = this.fs.client.attrs.peek(node.fh)
    let openFlags = 0
    if (a !== undefined) {
      const before = this.fs.reportedStamp(node.nodeid)
      const local = this.fs.client.files.peekState(node.fh)
      const now = stampOf(a, local === undefined ? a.size : local.sizeWith(a.size))
      if (before === now) openFlags |= FOPEN_KEEP_CACHE
      // Changed under us (cto): the kernel's size and times must be asked again; offset -1 leaves pages to the open.
      else this.notifier.notify(NOTIFY_INVAL_INODE, invalInodeOut(node.nodeid, -1n, 0n))
    }
    const t = this.track(node, file, writable, who)
    return { data: [openOut(t.id, openFlags)], dropped: t.dropped }
  }

  /** CREATE: GUARDED for O_EXCL, else UNCHECKED; the entry and the open file in one reply. */
  async create(who: Caller, dir: Inode, name: string, mode: number, flags: number): Promise<Reply> {
    const c = who.client
    const exclusive = (flags & O_EXCL) !== 0
    const r = await this.fs.creating(dir, name, () => c.nfs.call('CREATE', {
      where: { dir: { data: dir.fh }, name: Buffer.from(name) },
      how: { mode: exclusive ? createmode3.GUARDED : createmode3.UNCHECKED, obj_attributes: sattr({ mode: mode & 0o7777 }) },
    }))
    let fh: Buffer
    if (r.obj === null) {
      c.names.remove(dir.fh, name)
      fh = (await c.nfs.call('LOOKUP', { what: { dir: { data: dir.fh }, name: Buffer.from(name) } })).object.data
    } else {
      fh = r.obj.data
    }
    fh = Buffer.from(fh)
    c.names.addPositive(dir.fh, name, fh)
    noteCreated(c, dir.fh)
    const writable = (flags & O_ACCMODE) !== 0
    const file = await openFh(c.files, fh, writable ? 'r+' : 'r', { created: true, ...withCred(who.cred) })
    const a = c.attrs.peek(fh) ?? (await c.getattr(fh))
    const { entry, node } = this.fs.entryFor(fh, a, dir.fh)
    const t = this.track(node, file, writable, who)
    this.fs.createdHere(who, node)
    return {
      data: [entryOut(entry), openOut(t.id, 0)],
      sent: () => {
        this.fs.inodes.sent(node)
        this.fs.kernelEntries.given(dir.nodeid, name, entry.entryValidMs, node.nodeid)
      },
      dropped: () => {
        t.dropped()
        this.fs.dropNode(node)
      },
    }
  }

  async read(fh: bigint, offset: bigint, size: number): Promise<Reply> {
    return { data: [await this.file(fh).file.read(size, offset)] }
  }

  /** WRITE: the request's buffer is ours alone, so whole blocks are sent from it; `release` gives it back to the reader once committed. */
  async write(fh: bigint, offset: bigint, data: Buffer, release: (() => void) | null = null): Promise<Reply> {
    let f: OpenFile
    try {
      f = this.file(fh)
      if (this.fs.holdsAttrs(f.node)) await this.fs.settleAttrs(f.node)
    } catch (err) {
      release?.()
      throw err
    }
    const n = await f.file.write(data, offset, release === null ? { transfer: true } : { transfer: true, release })
    return { data: [writeOut(n)] }
  }

  /**
   * FLUSH (each close(2)) and FSYNC: write out and COMMIT, as the Linux
   * client's nfs_file_flush, then held attribute changes; deferred write
   * errors surface here.
   */
  async sync(fh: bigint, onlyWriters: boolean): Promise<Reply> {
    const f = this.file(fh)
    if (!onlyWriters || f.writable) await f.file.fsync()
    await this.fs.settleAttrs(f.node)
    return {}
  }

  async release(fh: bigint): Promise<Reply> {
    await this.closeFile(fh)
    return {}
  }

  private async closeFile(fh: bigint): Promise<void> {
    const f = this.files.get(fh)
    if (f === undefined) return
    this.files.delete(fh)
    try {
      await this.fs.settleAttrs(f.node)
      await f.file.close()
    } catch {
      // RELEASE has nobody to tell; FLUSH before it reported the error to close(2).
    } finally {
      // A SETATTR held while this close ran: with no writer left, nothing else would send it.
      await this.fs.settleAttrs(f.node).catch(() => undefined)
      f.node.opens--
      this.fs.openFiles--
      if (f.node.opens === 0) {
        this.fs.openEnded(f.node)
        await this.fs.removeSilly(f.node).catch(() => undefined)
        this.fs.inodes.collect(f.node)
      }
    }
  }

  /** Everything still open (shutdown): closed, so held data is written and COMMITted. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.files.keys()].map(id => this.closeFile(id)))
    this.dirs.clear()
  }

  /**
   * OPENDIR, with close-to-open for directories (Linux revalidates a
   * directory's attributes at open, nfs_lookup_verify_inode) where the
   * kernel holds names in it as absent: GETATTR from the server, and when it
   * shows the directory changed since we last knew it (another client's
   * doing: our own changes come with wcc data), the name cache drops its
   * names (attr-cache.ts) and the kernel those absent ones
   * (kernel-entries.ts), before the listing is read. Elsewhere the listing's
   * own reply carries the directory's attributes, which revalidate the name
   * cache as well, without a call more per directory (find, rm -rf); the
   * kernel's positive entries of names removed elsewhere meet STALE.
   */
  async opendir(who: Caller, node: Inode): Promise<Reply> {
    if (this.fs.kernelEntries.hasAbsent(node.nodeid)) {
      const before = this.fs.client.attrs.peek(node.fh)
      const after = await who.client.getattr(node.fh, { revalidate: true })
      if (before === undefined || stampOf(before) !== stampOf(after)) {
        for (const name of this.fs.kernelEntries.takeAbsent(node.nodeid)) await this.notifier.notifyAsync(NOTIFY_INVAL_ENTRY, invalEntryOut(node.nodeid, name))
      }
    }
    const id = this.next++
    this.dirs.set(id, { node, entries: null, names: [], opener: who })
    return { data: [openOut(id, 0)], dropped: () => { this.dirs.delete(id) } }
  }

  releasedir(fh: bigint): Reply {
    this.dirs.delete(fh)
    return {}
  }

  private async listing(d: OpenDir, plus: boolean): Promise<DirEntryPlus[]> {
    const c = d.opener.client
    const dirAttrs = await c.getattr(d.node.fh)
    const dots: DirEntryPlus[] = [
      { name: '.', fileid: dirAttrs.fileid, fh: null, stats: null },
      { name: '..', fileid: dirAttrs.fileid, fh: null, stats: null },
    ]
    let list: DirEntryPlus[] | null = null
    if (plus && c.usesReaddirPlus) {
      try {
        list = await listDirPlus(c, d.node.fh, c.limits.dirsize, Math.max(c.limits.dirsize * 4, 32_768), '')
      } catch (err) {
        if (!isNfsError(err, 'NFS3ERR_NOTSUPP')) throw err
      }
    }
    list ??= (await listDir(c, d.node.fh, c.limits.dirsize, '')).map(e => ({ ...e, fh: null, stats: null }))
    return [...dots, ...list]
  }

  /**
   * READDIR and READDIRPLUS: entries from index `offset` of the listing, as
   * many as fit in size bytes. The kernel asks for as much as the caller's
   * getdents buffer (glibc sizes it by the directory's st_blksize, our 1 MiB
   * block: 1 MiB per request), so the reply is sized to the entries that fit,
   * never to size: a buffer of `size` zeroed per request (most of them a few
   * entries, or none at the end of a listing) made rm -rf and find spend
   * most of their CPU zeroing and collecting megabytes.
   */
  async readdir(fh: bigint, offset: bigint, size: number, plus: boolean): Promise<Reply> {
    const d = this.dirs.get(fh)
    if (d === undefined) throw new FuseError('EBADF')
    if (offset === 0n || d.entries === null) {
      d.entries = await this.listing(d, plus)
      d.names = d.entries.map(e => Buffer.from(e.name))
    }
    const { entries, names } = d
    const first = Number(offset)
    let bytes = 0
    let end = first
    for (; end < entries.length; end++) {
      const name = names[end]
      if (name === undefined) break
      const need = plus ? direntplusSize(name) : direntSize(name)
      if (bytes + need > size) break
      bytes += need
    }
    const out = Buffer.alloc(bytes)
    let off = 0
    const held: Inode[] = []
    for (let i = first; i < end; i++) {
      const e = entries[i]
      const name = names[i]
      if (e === undefined || name === undefined) break
      const stats = e.stats
      const type = e.name === '.' || e.name === '..' ? direntType(S_IFDIR) : stats === null ? 0 : direntType(typeBits(stats.attrs.type))
      if (!plus) {
        off = putDirent(out, off, e.fileid, BigInt(i + 1), type, name)
        continue
      }
      let entry: Entry | null = null
      if (e.fh !== null && stats !== null && e.name !== '.' && e.name !== '..') {
        const r = this.fs.entryFor(e.fh, stats.attrs, d.node.fh)
        held.push(r.node)
        entry = r.entry
      }
      off = putDirentplus(out, off, entry, e.fileid, BigInt(i + 1), type, name)
    }
    return {
      data: [out.subarray(0, off)],
      sent: () => { for (const n of held) this.fs.inodes.sent(n) },
      dropped: () => { for (const n of held) this.fs.dropNode(n) },
    }
  }

  get openCount(): number {
    return this.files.size
  }
}
