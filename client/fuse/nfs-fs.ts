/*
 * FUSE operations on nodes, carried out with the NFS client (issue 5 point
 * 3): names through its lookup cache, attributes through its attribute
 * cache, whose per-object timeouts become the kernel's entry and attribute
 * validity (a directory's timeout for the names in it, as the Linux client
 * revalidates dentries against their parent). Open files and directories
 * are in nfs-files.ts.
 *
 * Every operation acts as its caller (callers.ts): the server judges the
 * caller's own uid, gid and groups, and files it creates are its own. The
 * kernel checks permissions first (default_permissions, mount.ts) against
 * the attributes it holds, with the caller's full credentials; when those
 * are stale (a mode changed on the server behind its back) the server's
 * answers decide: its errors are passed on, and an open asks ACCESS as the
 * caller, as Linux's nfs_may_open does (cached per identity in the
 * attribute cache, like the Linux access cache).
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:os'
import { ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND, ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ, createmode3, ftype3, time_how } from '../../xdr/generated/nfs3.ts'
import type { fattr3, nfstime3, post_op_fh3, sattr3 } from '../../xdr/generated/nfs3.ts'
import { sattr } from '../attrs.ts'
import { accessGranted, mayOpen } from '../access.ts'
import type { NfsClient } from '../nfs-client.ts'
import { lookupName, lookupNameOrAbsent, noteCreated } from '../walk.ts'
import type { Caller } from './callers.ts'
import type { Entry, FuseAttr } from './abi.ts'
import { FATTR, RENAME_NOREPLACE, S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, attrOut, entryOut, statfsOut } from './abi.ts'
import { FuseError, fuseAttr, splitdev } from './convert.ts'
import { isNfsError } from '../errors.ts'
import { changesNothing, mayWait, mergePending, sattrOf, withPending } from './pending-attrs.ts'
import type { PendingAttrs } from './pending-attrs.ts'
import { InodeTable } from './inodes.ts'
import { KernelEntries } from './kernel-entries.ts'
import type { Inode } from './inodes.ts'
import type { Reply } from './session.ts'

export interface SetattrIn {
  valid: number
  fh: bigint
  size: bigint
  atime: nfstime3
  mtime: nfstime3
  mode: number
  uid: number
  gid: number
}

const name3 = (s: string): Buffer => Buffer.from(s)
const { ENOENT } = constants.errno

/** The attributes of a negative entry (node 0): the kernel reads none of them. */
const NO_ATTR: FuseAttr = { ino: 0n, size: 0n, blocks: 0n, atime: { s: 0, ns: 0 }, mtime: { s: 0, ns: 0 }, ctime: { s: 0, ns: 0 }, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 }

const O_ACCMODE = 3
const O_WRONLY = 1
/** Set in an open's flags by execve (Linux __FMODE_EXEC): the open needs execute permission, not read. */
const FMODE_EXEC = 0o40

/** The ACCESS bits an open needs (Linux nfs_open_permission_mask). */
export function openAccess(flags: number): number {
  if ((flags & FMODE_EXEC) !== 0) return ACCESS3_EXECUTE
  const acc = flags & O_ACCMODE
  return (acc !== O_WRONLY ? ACCESS3_READ : 0) | (acc !== 0 ? ACCESS3_MODIFY : 0)
}

/** What the kernel was last told of a node's data (size, mtime, ctime): a change since means its page cache is stale. */
export function stampOf(a: fattr3, size: bigint = a.size): string {
  return `${size}:${a.mtime.seconds}.${a.mtime.nseconds}:${a.ctime.seconds}.${a.ctime.nseconds}`
}

/** Whether two callers act as the same uid on the server (held changes are only the creator's). */
function sameIdentity(a: Caller, b: Caller): boolean {
  const x = a.cred
  const y = b.cred
  if (x === undefined || y === undefined || x === 'none' || y === 'none') return x === y
  return x.uid === y.uid
}

export class NfsFs {
  readonly client: NfsClient
  readonly inodes: InodeTable
  /** Positive entries the kernel holds, to tell its forced revalidations (kernel-entries.ts). */
  readonly kernelEntries = new KernelEntries()
  /** Open files of the mount (the silly-rename check only looks up names while some are open). */
  openFiles = 0
  private readonly blksize: number
  private readonly stamps = new Map<bigint, string>()
  /** Files created through this mount and open since, with their creator (pending-attrs.ts). */
  private readonly created = new Map<bigint, Caller>()
  /** Attribute changes held until the file's flush (pending-attrs.ts), and those being sent. */
  private readonly held = new Map<bigint, PendingAttrs>()
  private readonly settling = new Map<bigint, Promise<void>>()
  /** Failures of held changes sent ahead of the flush (settleEarly): thrown by the next settleAttrs, the close's. */
  private readonly failed = new Map<bigint, unknown>()

  constructor(client: NfsClient, rootFh: Buffer) {
    this.client = client
    this.inodes = new InodeTable(rootFh)
    this.blksize = client.files.opts.blockSize
  }

  node(nodeid: bigint): Inode {
    const n = this.inodes.get(nodeid)
    if (n === undefined) throw new FuseError('ESTALE', `unknown node ${String(nodeid)}`)
    return n
  }

  /**
   * The attributes the kernel gets: the local size while this client holds
   * data beyond the server's end, held attribute changes, and for a file
   * unlinked while open (kept under a hidden name, see sillyRename) one link
   * fewer than the server counts, so fstat shows what unlink(2) leaves: 0
   * for a file that had one.
   */
  attrOf(n: Pick<Inode, 'fh' | 'nodeid' | 'silly'>, server: fattr3): FuseAttr {
    const held = this.held.get(n.nodeid)
    const a = held === undefined ? server : withPending(server, held)
    const state = this.client.files.peekState(n.fh)
    const size = a.type === ftype3.NF3REG && state !== undefined ? state.sizeWith(a.size) : a.size
    // The size apart, not a copy of the attributes with it: attrOf runs for most replies (session 38).
    this.stamps.set(n.nodeid, stampOf(a, size))
    const shown = n.silly === null ? a : { ...a, nlink: Math.max(0, a.nlink - 1) }
    return fuseAttr(shown, this.blksize, size)
  }

  /** The stamp last sent to the kernel for a node (dropped with the node). */
  reportedStamp(nodeid: bigint): string | undefined {
    return this.stamps.get(nodeid)
  }

  validMs(fh: Buffer): number {
    return this.client.options.attrCache.noac ? 0 : (this.client.attrs.timeoutOf(fh) ?? 0)
  }

  /** An entry for fh (held until the reply is sent or dropped). */
  entryFor(fh: Buffer, a: fattr3, parent: Buffer): { entry: Entry; node: Inode } {
    const node = this.inodes.hold(fh, a.fileid)
    return { node, entry: { nodeid: node.nodeid, generation: node.generation, entryValidMs: this.validMs(parent), attrValidMs: this.validMs(fh), attr: this.attrOf(node, a) } }
  }

  /** The entry for fh as name in parent (noted as held by the kernel once sent). */
  async entryReply(fh: Buffer, parent: Inode, name: string): Promise<Reply> {
    const a = await this.client.getattr(fh)
    const { entry, node } = this.entryFor(fh, a, parent.fh)
    const sent = (): void => {
      this.inodes.sent(node)
      this.kernelEntries.given(parent.nodeid, name, entry.entryValidMs, node.nodeid)
    }
    return { data: [entryOut(entry)], sent, dropped: () => { this.dropNode(node) } }
  }

  forget(nodeid: bigint, nlookup: bigint): void {
    const n = this.inodes.get(nodeid)
    if (n === undefined) return
    this.inodes.forget(nodeid, nlookup)
    if (this.inodes.get(nodeid) !== n) this.stamps.delete(nodeid)
  }

  dropNode(n: Inode): void {
    this.inodes.dropped(n)
    if (this.inodes.get(n.nodeid) !== n) this.stamps.delete(n.nodeid)
  }

  /**
   * LOOKUP. A missing name is answered as an entry with node 0 (a negative
   * entry the kernel keeps) for as long as our name cache would itself
   * answer it absent without asking the server (lookupcache=all, the
   * directory's attributes fresh): a later stat(2) of it then costs no
   * request. Only plain lookups are spared: the kernel looks again before
   * an exclusive create or a rename onto the name, and whatever this mount
   * creates there replaces the negative entry. Another client's new name
   * is seen, as a positive entry's change is, once the directory's
   * attributes expire (at most acdirmax).
   */
  async lookup(who: Caller, parent: Inode, name: string): Promise<Reply> {
    // Asked again for a name the kernel holds: it insists on the server's answer (kernel-entries.ts).
    const forced = this.kernelEntries.forced(parent.nodeid, name)
    const known = forced ? who.client.names.peek(parent.fh, name) : undefined
    const fh = await lookupNameOrAbsent(who.client, parent.fh, name, name, { fromServer: forced })
    // An answer other than the name cache's: the directory changed elsewhere, so its other names are no longer known
    // complete either. The same answer (rsync's rename onto a name it replaces, mkdir -p) leaves them as they were.
    if (forced && (known === undefined || fh === null || !known.equals(fh))) {
      who.client.names.remove(parent.fh, name)
      if (fh === null) who.client.names.addNegative(parent.fh, name)
      else who.client.names.addPositive(parent.fh, name, fh)
    }
    if (fh !== null) return this.entryReply(fh, parent, name)
    this.kernelEntries.drop(parent.nodeid, name)
    const ms = this.client.options.nameCache.mode === 'all' ? this.client.attrs.freshForMs(parent.fh) : 0
    if (ms <= 0) return { errno: ENOENT }
    return { data: [entryOut({ nodeid: 0n, generation: 0n, entryValidMs: ms, attrValidMs: 0, attr: NO_ATTR })], sent: () => { this.kernelEntries.givenAbsent(parent.nodeid, name, ms) } }
  }

  async getattr(who: Caller, n: Inode): Promise<Reply> {
    const a = await who.client.getattr(n.fh)
    return { data: [attrOut(this.attrOf(n, a), this.validMs(n.fh))] }
  }

  /** SETATTR as who (for a truncate through an open file, the caller passes the file's opener, as nfs3_proc_setattr uses the file's credential). */
  async setattr(who: Caller, n: Inode, s: SetattrIn): Promise<Reply> {
    const c = who.client
    const cached = c.attrs.peek(n.fh)
    const type = (cached ?? (await c.getattr(n.fh))).type
    const state = type === ftype3.NF3REG ? c.files.peekState(n.fh) : undefined
    // A file its caller created here and still writes: mode and times wait for the flush, with the data (pending-attrs.ts).
    const creator = this.created.get(n.nodeid)
    if (state !== undefined && state.writers > 0 && cached !== undefined && creator !== undefined && sameIdentity(creator, who)) {
      const held = this.held.get(n.nodeid)
      // rsync's fchmod to the mode it created the file with, tar's fchown to the owner it has: nothing to hold or send.
      const noop = changesNothing(s, cached, held)
      if (mayWait(s)) {
        if (!noop) this.held.set(n.nodeid, mergePending(held, s, Date.now()))
        // Times and mode come last: the data can go now, overlapping the requests until close
        // (once this reply is out: sending a WRITE first would delay the caller's futimens by as much).
        setImmediate(() => {
          c.files.writeback.writeAhead(state)
          // cp -a and tar x set the mode last, just before close: send what is held once the data is out, so the
          // close finds the SETATTR done or on its way instead of starting it (a failure waits for the close).
          if ((s.valid & FATTR.MODE) !== 0) this.settleEarly(n)
        })
      }
      if (mayWait(s) || noop) return { data: [attrOut(this.attrOf(n, cached), this.validMs(n.fh))] }
    }
    await this.settleAttrs(n)
    // As Linux nfs_setattr: write out held data first, so no later WRITE moves mtime past a time set now.
    if (state !== undefined) await c.files.writeback.sync(state)
    if ((s.valid & FATTR.SIZE) !== 0) {
      if (state !== undefined) await c.files.truncate(state, Number(s.size), who.cred)
      else await c.setattrFh(n.fh, { size: s.size })
    }
    const attrs: sattr3 = {
      mode: (s.valid & FATTR.MODE) !== 0 ? s.mode & 0o7777 : null,
      uid: (s.valid & FATTR.UID) !== 0 ? s.uid : null,
      gid: (s.valid & FATTR.GID) !== 0 ? s.gid : null,
      size: null,
      atime: (s.valid & FATTR.ATIME_NOW) !== 0 ? { set_it: time_how.SET_TO_SERVER_TIME } : (s.valid & FATTR.ATIME) !== 0 ? { set_it: time_how.SET_TO_CLIENT_TIME, atime: s.atime } : { set_it: time_how.DONT_CHANGE },
      mtime: (s.valid & FATTR.MTIME_NOW) !== 0 ? { set_it: time_how.SET_TO_SERVER_TIME } : (s.valid & FATTR.MTIME) !== 0 ? { set_it: time_how.SET_TO_CLIENT_TIME, mtime: s.mtime } : { set_it: time_how.DONT_CHANGE },
    }
    if (attrs.mode !== null || attrs.uid !== null || attrs.gid !== null || attrs.atime.set_it !== time_how.DONT_CHANGE || attrs.mtime.set_it !== time_how.DONT_CHANGE) {
      await c.nfs.call('SETATTR', { object: { data: n.fh }, new_attributes: attrs, guard: null })
    }
    // The kernel drops its entry for a directory whose mode it changed: its LOOKUP that follows is not forced (kernel-entries.ts).
    if (type === ftype3.NF3DIR && attrs.mode !== null) this.kernelEntries.expired(n.nodeid)
    return this.getattr(who, n)
  }

  /** n was created by who's CREATE and is open (until its last close: openEnded). */
  createdHere(who: Caller, n: Inode): void {
    this.created.set(n.nodeid, who)
  }

  /** n's last open closed: what it held has been sent. */
  openEnded(n: Inode): void {
    this.created.delete(n.nodeid)
    this.failed.delete(n.nodeid)
  }

  /** Whether attribute changes of n are held, being sent, or failed unreported (a WRITE settles them first: data after them would move mtime). */
  holdsAttrs(n: Inode): boolean {
    return this.held.has(n.nodeid) || this.settling.has(n.nodeid) || this.failed.has(n.nodeid)
  }

  /** Send what n holds now, in the background; a failure is kept for the next settleAttrs (the file's FLUSH) to throw. */
  settleEarly(n: Inode): void {
    this.settleAttrs(n, true).catch(() => undefined)
  }

  /**
   * Send n's held attribute changes, after its data (so no later WRITE
   * moves a time set now): at FLUSH, FSYNC and RELEASE, before another
   * open, a write, a link or a SETATTR that cannot wait. A send already
   * under way is waited for; its failure is reported to whoever started it,
   * or for an early one (settleEarly) to whoever settles next.
   */
  async settleAttrs(n: Inode, early = false): Promise<void> {
    if (!this.holdsAttrs(n)) return
    await this.settling.get(n.nodeid)
    // An early send leaves an unreported failure for the flush.
    if (this.failed.has(n.nodeid)) {
      if (early) return
      const err = this.failed.get(n.nodeid)
      this.failed.delete(n.nodeid)
      throw err
    }
    const p = this.held.get(n.nodeid)
    if (p === undefined) return
    this.held.delete(n.nodeid)
    // As the file's creator, who set them (setattr holds only the creator's changes).
    const c = this.created.get(n.nodeid)?.client ?? this.client
    const run = (async () => {
      const state = c.files.peekState(n.fh)
      if (state !== undefined) await c.files.writeback.sync(state)
      await c.nfs.call('SETATTR', { object: { data: n.fh }, new_attributes: sattrOf(p), guard: null })
    })()
    // Kept before anyone waiting on `quiet` resumes, so the next settleAttrs cannot miss it.
    const quiet = run.then(() => undefined, (err: unknown) => { if (early && this.created.has(n.nodeid)) this.failed.set(n.nodeid, err) })
    this.settling.set(n.nodeid, quiet)
    try {
      await run
    } finally {
      if (this.settling.get(n.nodeid) === quiet) this.settling.delete(n.nodeid)
    }
  }

  async readlink(who: Caller, n: Inode): Promise<Reply> {
    const r = await who.client.nfs.call('READLINK', { symlink: { data: n.fh } })
    return { data: [Buffer.from(r.data)] }
  }

  /** After our own CREATE-like call: the new handle (LOOKUP when the server sent none), into the name cache. */
  private async made(who: Caller, dir: Inode, name: string, obj: post_op_fh3): Promise<Reply> {
    const c = who.client
    let fh: Buffer
    if (obj === null) {
      c.names.remove(dir.fh, name)
      fh = await lookupName(c, dir.fh, name, name)
    } else {
      fh = Buffer.from(obj.data)
      c.names.addPositive(dir.fh, name, fh)
      noteCreated(c, dir.fh, { fh, attrs: c.attrs.peek(fh) ?? null })
    }
    return this.entryReply(fh, dir, name)
  }

  /** A create-like call; EEXIST means the name cache was wrong about dir: forget the name (and dir's completeness). */
  async creating<T>(dir: Inode, name: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (err) {
      if (isNfsError(err, 'NFS3ERR_EXIST')) this.client.names.remove(dir.fh, name)
      throw err
    }
  }

  async mkdir(who: Caller, dir: Inode, name: string, mode: number): Promise<Reply> {
    const r = await this.creating(dir, name, () => who.client.nfs.call('MKDIR', { where: { dir: { data: dir.fh }, name: name3(name) }, attributes: sattr({ mode: mode & 0o7777 }) }))
    // Empty, and ours: names looked up in it before anything else changes it are absent (name-cache.ts).
    if (r.obj !== null) this.client.names.markComplete(r.obj.data)
    return this.made(who, dir, name, r.obj)
  }

  async mknod(who: Caller, dir: Inode, name: string, mode: number, rdev: number): Promise<Reply> {
    const where = { dir: { data: dir.fh }, name: name3(name) }
    const attributes = sattr({ mode: mode & 0o7777 })
    const fmt = mode & S_IFMT
    if (fmt === S_IFREG || fmt === 0) {
      const r = await this.creating(dir, name, () => who.client.nfs.call('CREATE', { where, how: { mode: createmode3.GUARDED, obj_attributes: attributes } }))
      return this.made(who, dir, name, r.obj)
    }
    const { major, minor } = splitdev(rdev)
    const what =
      fmt === S_IFCHR || fmt === S_IFBLK
        ? { type: fmt === S_IFCHR ? ftype3.NF3CHR : ftype3.NF3BLK, device: { dev_attributes: attributes, spec: { specdata1: major, specdata2: minor } } }
        : fmt === S_IFIFO || fmt === S_IFSOCK
          ? { type: fmt === S_IFIFO ? ftype3.NF3FIFO : ftype3.NF3SOCK, pipe_attributes: attributes }
          : null
    if (what === null) throw new FuseError('EINVAL')
    const r = await this.creating(dir, name, () => who.client.nfs.call('MKNOD', { where, what }))
    return this.made(who, dir, name, r.obj)
  }

  async symlink(who: Caller, dir: Inode, name: string, target: string): Promise<Reply> {
    const r = await this.creating(dir, name, () => who.client.nfs.call('SYMLINK', {
      where: { dir: { data: dir.fh }, name: name3(name) },
      symlink: { symlink_attributes: sattr({}), symlink_data: Buffer.from(target) },
    }))
    return this.made(who, dir, name, r.obj)
  }

  async link(who: Caller, n: Inode, dir: Inode, name: string): Promise<Reply> {
    await this.settleAttrs(n)
    await this.creating(dir, name, () => who.client.nfs.call('LINK', { file: { data: n.fh }, link: { dir: { data: dir.fh }, name: name3(name) } }))
    this.client.names.addPositive(dir.fh, name, n.fh)
    noteCreated(who.client, dir.fh)
    return this.entryReply(n.fh, dir, name)
  }

  /** The open node a name refers to, if any (only asked while files are open). */
  private async openChild(who: Caller, dir: Inode, name: string): Promise<Inode | undefined> {
    if (this.openFiles === 0) return undefined
    let fh: Buffer
    try {
      fh = await lookupName(who.client, dir.fh, name, name)
    } catch {
      return undefined
    }
    const n = this.inodes.byHandle(fh)
    return n !== undefined && n.opens > 0 ? n : undefined
  }

  /**
   * NFSv3 has no open state: a file removed while open would answer STALE
   * to its next READ. As the Linux client, rename it to a hidden name
   * instead and remove that at the last close (nfs_sillyrename), as the
   * caller who unlinked it (nfs_async_unlink keeps that credential).
   */
  private async sillyRename(who: Caller, dir: Inode, name: string, n: Inode): Promise<void> {
    const hidden = `.tsnfs${randomBytes(8).toString('hex')}`
    await this.rawRename(who, dir, name, dir, hidden)
    n.silly = { dir: Buffer.from(dir.fh), name: hidden, by: who.client }
  }

  async remove(who: Caller, dir: Inode, name: string, proc: 'REMOVE' | 'RMDIR'): Promise<Reply> {
    const c = who.client
    if (proc === 'REMOVE') {
      const open = await this.openChild(who, dir, name)
      // Once hidden, the file lives on through that name: its other names are removed as usual.
      if (open !== undefined && open.silly === null) {
        await this.sillyRename(who, dir, name, open)
        return {}
      }
    }
    const old = c.names.peek(dir.fh, name)
    await c.nfs.call(proc, { object: { dir: { data: dir.fh }, name: name3(name) } })
    this.kernelEntries.drop(dir.nodeid, name)
    c.names.addNegative(dir.fh, name)
    if (old !== undefined) {
      c.attrs.invalidate(old)
      c.names.dropDir(old)
    }
    return {}
  }

  /** The last close of a silly-renamed file: remove its hidden name. */
  async removeSilly(n: Inode): Promise<void> {
    const s = n.silly
    if (s === null) return
    n.silly = null
    await s.by.nfs.call('REMOVE', { object: { dir: { data: s.dir }, name: name3(s.name) } })
    this.client.names.addNegative(s.dir, s.name)
  }

  /** RENAME and RENAME2: NFSv3 renames replace; RENAME_NOREPLACE is checked by LOOKUP first (racy against other clients). */
  async rename(who: Caller, dir: Inode, name: string, newDir: Inode, newName: string, flags: number): Promise<Reply> {
    if ((flags & ~RENAME_NOREPLACE) !== 0) throw new FuseError('EINVAL')
    if ((flags & RENAME_NOREPLACE) !== 0) {
      const exists = await lookupName(who.client, newDir.fh, newName, newName).then(
        () => true,
        () => false,
      )
      if (exists) throw new FuseError('EEXIST')
    }
    const open = await this.openChild(who, newDir, newName)
    if (open !== undefined && open.silly === null) await this.sillyRename(who, newDir, newName, open)
    await this.rawRename(who, dir, name, newDir, newName)
    return {}
  }

  private async rawRename(who: Caller, dir: Inode, name: string, newDir: Inode, newName: string): Promise<void> {
    const c = who.client
    const moved = c.names.peek(dir.fh, name)
    const replaced = c.names.peek(newDir.fh, newName)
    await c.nfs.call('RENAME', { from: { dir: { data: dir.fh }, name: name3(name) }, to: { dir: { data: newDir.fh }, name: name3(newName) } })
    this.kernelEntries.drop(dir.nodeid, name)
    this.kernelEntries.drop(newDir.nodeid, newName)
    c.names.addNegative(dir.fh, name)
    if (moved !== undefined) c.names.addPositive(newDir.fh, newName, moved)
    else c.names.remove(newDir.fh, newName)
    // RFC 1813 §3.3.14: the moved object's ctime may change, a replaced one loses a link.
    if (moved !== undefined) c.attrs.invalidate(moved)
    if (replaced !== undefined && (moved === undefined || !replaced.equals(moved))) c.attrs.invalidate(replaced)
  }

  async statfs(who: Caller): Promise<Reply> {
    const s = await who.client.statfs()
    const bsize = 4096
    const blocks = (v: bigint): bigint => v / BigInt(bsize)
    return { data: [statfsOut({ blocks: blocks(s.tbytes), bfree: blocks(s.fbytes), bavail: blocks(s.abytes), files: s.tfiles, ffree: s.afiles, bsize, namelen: 255, frsize: bsize })] }
  }

  /** FUSE ACCESS (only sent without default_permissions): R_OK, W_OK, X_OK against what the server grants who. */
  async access(who: Caller, n: Inode, mask: number): Promise<Reply> {
    if (mask === 0) {
      await who.client.getattr(n.fh)
      return {}
    }
    const isDir = (this.client.attrs.peek(n.fh) ?? (await who.client.getattr(n.fh))).type === ftype3.NF3DIR
    let want = 0
    if ((mask & 4) !== 0) want |= ACCESS3_READ
    if ((mask & 2) !== 0) want |= ACCESS3_MODIFY | ACCESS3_EXTEND | (isDir ? ACCESS3_DELETE : 0)
    if ((mask & 1) !== 0) want |= isDir ? ACCESS3_LOOKUP : ACCESS3_EXECUTE
    if ((await accessGranted(who.client, n.fh, want)) !== want) throw new FuseError('EACCES')
    return {}
  }

  /**
   * Before an open (client/access.ts): the attributes revalidated
   * (close-to-open) and the server's ACCESS answer for who. EACCES when the
   * server would not let who open the file so, whatever the kernel's cached
   * mode said.
   */
  async mayOpen(who: Caller, n: Inode, flags: number): Promise<void> {
    await mayOpen(who.client, n.fh, openAccess(flags))
  }
}
