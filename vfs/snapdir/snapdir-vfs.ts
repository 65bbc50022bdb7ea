/*
 * Snapshots of an export seen inside it, read-only, as NetApp filers show them: `.snapshot/SNAP/`
 * under the export root. A Vfs over the live one and one read-only Vfs per snapshot, opened on
 * first use and closed when the snapshot goes away.
 *
 * File ids (and so handles and fileid attributes) of the three kinds never meet:
 * - the live file system's as they are (the engine's are inode numbers, below 2^32);
 * - `.snapshot` itself: SNAPDIR_ID, 2^40 − 1;
 * - snapshot s's objects: ((s + 1) << 40) | inner id, s its id in the store's table. Table ids
 *   are persistent, so these handles hold across restarts. A slot reused by a later snapshot
 *   must not answer the old one's handles: the generation carries the snapshot's creation
 *   sequence folded in (genFor), so an old handle meets a generation mismatch: ESTALE.
 * Every change inside `.snapshot` is EROFS; a snapshot deleted or invalidated is ESTALE.
 */
import { VfsError } from '../errors.ts'
import type {
  Attr, Caller, CreateMode, Created, DirChange, DirEntry, DirPage, FileRef, FsStat, Owner, PathConf, ReadResult, SetAttr, Stability,
  Timespec, Vfs, VfsCache, VfsCapabilities,
} from '../types.ts'

export const SNAPDIR_NAME = '.snapshot'
export const SNAPDIR_ID = (1n << 40n) - 1n
const SNAPDIR_GEN = 1
const INNER_BITS = 40n
const INNER_MASK = (1n << INNER_BITS) - 1n
/** Snapshot ids the composed ids hold: 64 − 40 bits, less one for the +1. */
const MAX_SNAPSHOT_ID = 2 ** 23 - 2
/** The cookie after which a visible `.snapshot` entry comes in the root's listing (above ext4's hash cookies). */
const SNAPDIR_COOKIE = 0xffff_ffff_ffff_fff0n
/** `.snapshot`'s own listing: `.` at 1, `..` at 2, snapshot id s at s + 3. */
const FIRST_SNAPSHOT_COOKIE = 3n

export interface SnapshotEntry {
  /** Persistent id in the store's table. */
  readonly id: number
  readonly name: string
  /** Milliseconds since the epoch. */
  readonly created: number
  /** Creation order over the store's life (never reused): tells a slot's snapshots apart. */
  readonly seq: number
}

/** Where the snapshots come from (server/volume-snapshots.ts over an OriginDevice). */
export interface SnapshotSource {
  /** The snapshots that can be read now (live ones only). */
  list(): readonly SnapshotEntry[]
  /** A read-only Vfs of the snapshot's file system. */
  open(entry: SnapshotEntry): Promise<Vfs>
}

export interface SnapdirOptions {
  /** List `.snapshot` in the export root's READDIR (`snapdir=visible`); it is always found by LOOKUP. */
  visible?: boolean
}

const DOT = Buffer.from('.')
const DOTDOT = Buffer.from('..')
const SNAPDIR = Buffer.from(SNAPDIR_NAME)

function genFor(innerGen: number, seq: number): number {
  return (innerGen ^ Math.imul(seq + 1, 0x9e3779b1)) >>> 0
}

function fromMs(ms: number): Timespec {
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1_000_000 }
}

type Where =
  | { readonly kind: 'live'; readonly ref: FileRef }
  | { readonly kind: 'snapdir' }
  | { readonly kind: 'snap'; readonly entry: SnapshotEntry; readonly vfs: Vfs; readonly ref: FileRef }

export class SnapdirVfs implements Vfs {
  readonly #live: Vfs
  readonly #source: SnapshotSource
  readonly #visible: boolean
  /** Opened snapshot file systems by table id, with the entry they were opened for. */
  readonly #open = new Map<number, { entry: SnapshotEntry; vfs: Promise<Vfs> }>()
  /** `.snapshot`'s mtime: when the set of snapshots was last seen to change. */
  #listKey = ''
  #changed: Timespec = fromMs(Date.now())

  constructor(live: Vfs, source: SnapshotSource, options: SnapdirOptions = {}) {
    this.#live = live
    this.#source = source
    this.#visible = options.visible ?? false
  }

  /** The live file system under the wrapper (for callers that freeze it). */
  get live(): Vfs {
    return this.#live
  }

  root(): FileRef {
    return this.#live.root()
  }

  capabilities(): VfsCapabilities {
    return this.#live.capabilities()
  }

  // ---- reading ----

  async getattr(f: FileRef): Promise<Attr> {
    const w = await this.#where(f)
    if (w.kind === 'live') return this.#live.getattr(f)
    if (w.kind === 'snapdir') return this.#snapdirAttr()
    return this.#outAttr(w.entry, await w.vfs.getattr(w.ref))
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    const w = await this.#where(dir)
    if (w.kind === 'live') {
      if (name.equals(SNAPDIR) && this.#isRoot(dir)) return { ref: this.#snapdirRef(), attr: await this.#snapdirAttr() }
      return this.#live.lookup(dir, name)
    }
    if (w.kind === 'snapdir') {
      if (name.equals(DOT)) return { ref: this.#snapdirRef(), attr: await this.#snapdirAttr() }
      if (name.equals(DOTDOT)) return { ref: this.#live.root(), attr: await this.#live.getattr(this.#live.root()) }
      const entry = this.#list().find((e) => name.equals(Buffer.from(e.name)))
      if (entry === undefined) throw new VfsError('ENOENT')
      const vfs = await this.#vfsOf(entry)
      const root = vfs.root()
      return { ref: this.#outRef(entry, root), attr: this.#outAttr(entry, await vfs.getattr(root)) }
    }
    if (name.equals(DOTDOT) && this.#isInnerRoot(w)) return { ref: this.#snapdirRef(), attr: await this.#snapdirAttr() }
    const found = await w.vfs.lookup(w.ref, name)
    return { ref: this.#outRef(w.entry, found.ref), attr: this.#outAttr(w.entry, found.attr) }
  }

  async readlink(f: FileRef): Promise<Buffer> {
    const w = await this.#where(f)
    if (w.kind === 'live') return this.#live.readlink(f)
    if (w.kind === 'snapdir') throw new VfsError('EINVAL')
    return w.vfs.readlink(w.ref)
  }

  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    const w = await this.#where(f)
    if (w.kind === 'live') return this.#live.read(f, offset, count)
    if (w.kind === 'snapdir') throw new VfsError('EISDIR')
    const r = await w.vfs.read(w.ref, offset, count)
    return { ...r, attr: this.#outAttr(w.entry, r.attr) }
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    const w = await this.#where(dir)
    if (w.kind === 'live') return this.#readdirLive(dir, cookie, max)
    if (w.kind === 'snapdir') return this.#readdirSnapdir(cookie, max)
    const page = await w.vfs.readdir(w.ref, cookie, max)
    const atRoot = this.#isInnerRoot(w)
    const snapdir = atRoot ? await this.#snapdirAttr() : undefined
    const entries = page.entries.map((e): DirEntry => {
      if (snapdir !== undefined && e.name.equals(DOTDOT)) return { name: e.name, fileid: SNAPDIR_ID, cookie: e.cookie, ref: this.#snapdirRef(), attr: snapdir }
      const out: DirEntry = { name: e.name, fileid: this.#outId(w.entry, e.fileid), cookie: e.cookie }
      if (e.ref !== undefined) out.ref = this.#outRef(w.entry, e.ref)
      if (e.attr !== undefined) out.attr = this.#outAttr(w.entry, e.attr)
      return out
    })
    return { entries, eof: page.eof }
  }

  async fsstat(f: FileRef): Promise<FsStat> {
    const w = await this.#where(f)
    if (w.kind === 'snap') return w.vfs.fsstat(w.ref)
    return this.#live.fsstat(w.kind === 'live' ? f : this.#live.root())
  }

  async pathconf(f: FileRef): Promise<PathConf> {
    const w = await this.#where(f)
    if (w.kind === 'snap') return w.vfs.pathconf(w.ref)
    return this.#live.pathconf(w.kind === 'live' ? f : this.#live.root())
  }

  // ---- changing: the live file system only ----

  async setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    await this.#liveOnly(f)
    return this.#live.setattr(f, set)
  }

  async write(f: FileRef, offset: bigint, data: Buffer, stable: Stability, caller?: Caller): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    await this.#liveOnly(f)
    return this.#live.write(f, offset, data, stable, caller)
  }

  async commit(f: FileRef, offset: bigint, count: number): Promise<{ before: Attr; after: Attr }> {
    await this.#liveOnly(f)
    return this.#live.commit(f, offset, count)
  }

  /** Only the live file system changes; a snapshot's objects have nothing to commit. */
  async commitMetadata(refs: readonly FileRef[]): Promise<void> {
    if (this.#live.commitMetadata === undefined) return
    const live: FileRef[] = []
    for (const f of refs) if ((await this.#where(f)).kind === 'live') live.push(f)
    if (live.length > 0) await this.#live.commitMetadata(live)
  }

  async create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    await this.#newName(dir, name)
    return this.#live.create(dir, name, mode, owner)
  }

  async mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    await this.#newName(dir, name)
    return this.#live.mkdir(dir, name, attr, owner)
  }

  async symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    await this.#newName(dir, name)
    return this.#live.symlink(dir, name, target, attr, owner)
  }

  async mknod(dir: FileRef, name: Buffer, type: 'block' | 'char' | 'socket' | 'fifo', rdev: { major: number; minor: number }, attr: SetAttr, owner: Owner): Promise<Created> {
    await this.#newName(dir, name)
    return this.#live.mknod(dir, name, type, rdev, attr, owner)
  }

  async remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    await this.#oldName(dir, name)
    return this.#live.remove(dir, name)
  }

  async rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    await this.#oldName(dir, name)
    return this.#live.rmdir(dir, name)
  }

  async rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, caller?: Caller): Promise<{ from: DirChange; to: DirChange }> {
    await this.#oldName(fromDir, fromName)
    await this.#newName(toDir, toName)
    return this.#live.rename(fromDir, fromName, toDir, toName, caller)
  }

  async link(f: FileRef, dir: FileRef, name: Buffer, caller?: Caller): Promise<{ attr: Attr; dir: DirChange }> {
    await this.#liveOnly(f)
    await this.#newName(dir, name)
    return this.#live.link(f, dir, name, caller)
  }

  async close(): Promise<void> {
    const opened = [...this.#open.values()]
    this.#open.clear()
    for (const o of opened) await (await o.vfs.catch(() => undefined))?.close().catch(() => undefined)
    await this.#live.close()
  }

  /** The live file system's caches (the snapshots' read-only engines keep theirs to themselves). */
  caches(): readonly VfsCache[] {
    return this.#live.caches?.() ?? []
  }

  /** Closes the file systems of snapshots no longer listed (a delete calls it; every access checks too). */
  async forget(): Promise<void> {
    const live = this.#list()
    for (const [id, o] of [...this.#open]) {
      if (live.some((e) => e.id === id && e.seq === o.entry.seq)) continue
      this.#open.delete(id)
      await (await o.vfs.catch(() => undefined))?.close().catch(() => undefined)
    }
  }

  // ---- internals ----

  #list(): readonly SnapshotEntry[] {
    const list = [...this.#source.list()].filter((e) => e.id >= 0 && e.id <= MAX_SNAPSHOT_ID).sort((a, b) => a.id - b.id)
    const key = list.map((e) => `${e.id}:${e.seq}`).join(',')
    if (key !== this.#listKey) {
      this.#listKey = key
      this.#changed = fromMs(Date.now())
    }
    return list
  }

  #isRoot(f: FileRef): boolean {
    const root = this.#live.root()
    return f.id === root.id && f.gen === root.gen
  }

  #isInnerRoot(w: { vfs: Vfs; ref: FileRef }): boolean {
    const root = w.vfs.root()
    return w.ref.id === root.id && w.ref.gen === root.gen
  }

  #snapdirRef(): FileRef {
    return { id: SNAPDIR_ID, gen: SNAPDIR_GEN }
  }

  async #snapdirAttr(): Promise<Attr> {
    const root = await this.#live.getattr(this.#live.root())
    const n = this.#list().length
    const t = this.#changed
    return {
      type: 'dir', mode: 0o555, nlink: 2 + n, uid: root.uid, gid: root.gid, size: 4096n, used: 4096n, rdev: { major: 0, minor: 0 },
      fileid: SNAPDIR_ID, gen: SNAPDIR_GEN, atime: t, mtime: t, ctime: t,
    }
  }

  #outId(entry: SnapshotEntry, inner: bigint): bigint {
    if (inner < 0n || inner > INNER_MASK) throw new VfsError('EIO')
    return (BigInt(entry.id + 1) << INNER_BITS) | inner
  }

  #outRef(entry: SnapshotEntry, inner: FileRef): FileRef {
    return { id: this.#outId(entry, inner.id), gen: genFor(inner.gen, entry.seq) }
  }

  #outAttr(entry: SnapshotEntry, a: Attr): Attr {
    return { ...a, fileid: this.#outId(entry, a.fileid), gen: genFor(a.gen, entry.seq) }
  }

  async #vfsOf(entry: SnapshotEntry): Promise<Vfs> {
    const held = this.#open.get(entry.id)
    if (held !== undefined && held.entry.seq === entry.seq) return held.vfs
    if (held !== undefined) await this.forget()
    const vfs = this.#source.open(entry)
    this.#open.set(entry.id, { entry, vfs })
    // A failed open is not kept: the next access tries again.
    vfs.catch(() => {
      if (this.#open.get(entry.id)?.vfs === vfs) this.#open.delete(entry.id)
    })
    return vfs
  }

  /** Which file system `f` belongs to; a snapshot no longer live (or never) is ESTALE. */
  async #where(f: FileRef): Promise<Where> {
    if (f.id === SNAPDIR_ID) {
      if (f.gen !== SNAPDIR_GEN) throw new VfsError('ESTALE')
      return { kind: 'snapdir' }
    }
    const s = f.id >> INNER_BITS
    if (s === 0n) return { kind: 'live', ref: f }
    const id = Number(s - 1n)
    const entry = this.#list().find((e) => e.id === id)
    if (entry === undefined) {
      await this.forget()
      throw new VfsError('ESTALE')
    }
    const vfs = await this.#vfsOf(entry)
    // The generation as the snapshot's own file system has it: a slot's later snapshot mismatches.
    return { kind: 'snap', entry, vfs, ref: { id: f.id & INNER_MASK, gen: genFor(f.gen, entry.seq) } }
  }

  async #liveOnly(f: FileRef): Promise<void> {
    const w = await this.#where(f)
    if (w.kind !== 'live') throw new VfsError('EROFS')
  }

  /** A name made in `dir`: EROFS inside `.snapshot`; `.snapshot` itself in the root is taken. */
  async #newName(dir: FileRef, name: Buffer): Promise<void> {
    await this.#liveOnly(dir)
    if (name.equals(SNAPDIR) && this.#isRoot(dir)) throw new VfsError('EEXIST')
  }

  /** A name removed from `dir`: EROFS inside `.snapshot`, and `.snapshot` itself cannot go. */
  async #oldName(dir: FileRef, name: Buffer): Promise<void> {
    await this.#liveOnly(dir)
    if (name.equals(SNAPDIR) && this.#isRoot(dir)) throw new VfsError('EROFS')
  }

  async #readdirLive(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    if (!this.#visible || !this.#isRoot(dir)) return this.#live.readdir(dir, cookie, max)
    if (cookie === SNAPDIR_COOKIE) return { entries: [], eof: true }
    const page = await this.#live.readdir(dir, cookie, max)
    // A live entry of that name is shadowed, as LOOKUP finds `.snapshot` first.
    const entries = page.entries.filter((e) => !e.name.equals(SNAPDIR))
    if (!page.eof) return { entries, eof: false }
    if (page.entries.length >= max) return { entries, eof: false }
    entries.push({ name: SNAPDIR, fileid: SNAPDIR_ID, cookie: SNAPDIR_COOKIE, ref: this.#snapdirRef(), attr: await this.#snapdirAttr() })
    return { entries, eof: true }
  }

  async #readdirSnapdir(cookie: bigint, max: number): Promise<DirPage> {
    const self = await this.#snapdirAttr()
    const all: DirEntry[] = [
      { name: DOT, fileid: SNAPDIR_ID, cookie: 1n, ref: this.#snapdirRef(), attr: self },
      { name: DOTDOT, fileid: this.#live.root().id, cookie: 2n },
    ]
    // A snapshot is a copy of the live file system, so its root has the live root's id: listing
    // needs no snapshot opened.
    const rootId = this.#live.root().id
    for (const e of this.#list()) {
      all.push({ name: Buffer.from(e.name), fileid: this.#outId(e, rootId), cookie: BigInt(e.id) + FIRST_SNAPSHOT_COOKIE })
    }
    const rest = all.filter((e) => e.cookie > cookie)
    const entries = rest.slice(0, Math.max(1, max))
    return { entries, eof: entries.length === rest.length }
  }
}
