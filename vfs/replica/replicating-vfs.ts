/*
 * The replicating layer (server/replication/README.md): a Vfs over any
 * backend that names every object by its vid (id-map.ts) and appends each
 * successful change to a ChangeSink, under the locks that order it against
 * conflicting ones (object-locks.ts), with the times the backend reported
 * after it. Calls that fail append nothing.
 *
 * Replies that promise stability (every namespace change, SETATTR, a WRITE
 * that is not UNSTABLE, COMMIT) wait until the map's binds and the change
 * are durable (RFC 1813 §3.3.7, §3.3.21: what such a reply promises must
 * survive the server, here also its takeover by a standby); a caller that
 * holds its reply itself (held-changes.ts: a sync primary's non-idempotent
 * NFS call) gets the call back once the change is appended to the local log,
 * and waits for the log's flush and the standbys before it sends. The binds and
 * unbinds a change makes go to the sink with it (MapEdit): with
 * `sinkKeepsEdits` (the change log, server/replication/map-recovery.ts) the
 * change's durability covers them and the map is written at checkpoints;
 * otherwise the map is flushed too. Objects met unbound get a vid, made
 * durable in the map before the reply that shows it.
 *
 * `times` of each change list what it touched; for REMOVE, RMDIR and RENAME
 * the entries whose refs are not directories of the change name the removed
 * object, or the moved object and then the one it replaced (applier.ts uses
 * them to tell a change done from one to do when it replays).
 */
import { VfsError } from '../errors.ts'
import type {
  Attr, Caller, CreateMode, Created, DirChange, DirPage, FileRef, FsStat, Owner, PathConf, ReadResult, SetAttr, Stability, Vfs, VfsCapabilities,
} from '../types.ts'
import type { Change, ChangeBody, ChangeSink, ChangeTimes, MapEdit, NewObject } from './change.ts'
import { ListingCache } from './dir-cookies.ts'
import { heldScope } from './held-changes.ts'
import type { IdMap } from './id-map.ts'
import { pageFor, readListing } from './listing-reader.ts'
import { fileLock, nameLock, ObjectLocks } from './object-locks.ts'
import { isGone, outAttr, outDir, resolveSetAttr, sameRef } from './translate.ts'
import { WriteOverlaps } from './write-overlap.ts'

export interface ReplicatingVfsOptions {
  backend: Vfs
  map: IdMap
  sink: ChangeSink
  /**
   * The sink makes each change's map edits as durable as the change, and the map is redone from
   * them at start (the change log): a stable reply then waits for no fsync of the map.
   */
  sinkKeepsEdits?: boolean
  /** Directory entries kept in cached READDIR listings, over all directories (default 1,000,000). */
  listingEntries?: number
}

/** readRange() serves WRITE changes, at most the server's wtmax each; more is a caller's bug. */
const MAX_RANGE = 64 * 1024 * 1024

type Special = 'block' | 'char' | 'socket' | 'fifo'

interface Victim {
  local: FileRef
  vid: FileRef | undefined
  attr: Attr
}

export class ReplicatingVfs implements Vfs {
  readonly #b: Vfs
  readonly #map: IdMap
  readonly #sink: ChangeSink
  readonly #sinkKeepsEdits: boolean
  readonly #locks = new ObjectLocks()
  readonly #listings: ListingCache
  /** Vids bound on first sight whose binding is not yet durable: a reply showing one waits for the map. */
  readonly #fresh = new Set<bigint>()
  readonly #writing = new WriteOverlaps()
  #lastSeq = 0n

  constructor(o: ReplicatingVfsOptions) {
    this.#b = o.backend
    this.#map = o.map
    this.#sink = o.sink
    this.#sinkKeepsEdits = o.sinkKeepsEdits ?? false
    this.#listings = new ListingCache(o.listingEntries ?? 1_000_000)
  }

  root(): FileRef {
    return this.#map.root()
  }

  capabilities(): VfsCapabilities {
    return this.#b.capabilities()
  }

  // ---- reading ----

  async getattr(f: FileRef): Promise<Attr> {
    return outAttr(await this.#b.getattr(this.#local(f)), f)
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    const r = await this.#b.lookup(this.#local(dir), name)
    const vid = this.#vidFor(r.ref)
    await this.#settleFresh([vid])
    return { ref: vid, attr: outAttr(r.attr, vid) }
  }

  async readlink(f: FileRef): Promise<Buffer> {
    return this.#b.readlink(this.#local(f))
  }

  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    const r = await this.#b.read(this.#local(f), offset, count)
    return { ...r, attr: outAttr(r.attr, f) }
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    const local = this.#local(dir)
    const list = await this.#listings.load(dir.id, () => readListing(this.#b, local))
    const page = await pageFor(this.#b, local, dir, list, cookie, max, {
      vidFor: (l) => this.#vidFor(l),
      vidOfId: (id) => this.#map.vidOfId(id),
    })
    await this.#settleFresh(page.entries.map((e) => e.ref ?? dir))
    return page
  }

  async fsstat(f: FileRef): Promise<FsStat> {
    return this.#b.fsstat(this.#local(f))
  }

  async pathconf(f: FileRef): Promise<PathConf> {
    return this.#b.pathconf(this.#local(f))
  }

  /** The primary's bytes of a range, for shipping a WRITE change (DataSource); null when the object is gone. */
  async readRange(ref: FileRef, offset: bigint, length: number): Promise<Buffer | null> {
    if (!Number.isInteger(length) || length < 0 || length > MAX_RANGE) throw new VfsError('EINVAL', `replica: readRange of ${length} bytes`)
    const local = this.#map.local(ref)
    if (local === undefined) return null
    const parts: Buffer[] = []
    let got = 0
    while (got < length) {
      let r: ReadResult
      try {
        r = await this.#b.read(local, offset + BigInt(got), length - got)
      } catch (err) {
        if (isGone(err)) return null
        throw err
      }
      parts.push(Buffer.from(r.data))
      r.release?.()
      got += r.data.length
      if (r.eof || r.data.length === 0) break
    }
    // One read is the rule (a WRITE's range): its copy is the answer, without a second.
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)
  }

  // ---- data ----

  async write(f: FileRef, offset: bigint, data: Buffer, stable: Stability, caller?: Caller): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    const local = this.#local(f)
    const release = await this.#locks.acquire([fileLock(f, 'shared')])
    const me = this.#writing.start(f.id, offset, data.length)
    let seq: bigint | null = null
    let r: Awaited<ReturnType<Vfs['write']>>
    try {
      r = await this.#b.write(local, offset, data, stable, caller)
      // The write's own after-attributes carry its times: no getattr on the hot path. Its bytes go
      // to the sink (kept in memory for the senders, who then need not read the file back) unless
      // an overlapping WRITE ran beside it: which of the two reached the file last is not known,
      // and the senders' read of the range then ships what the file holds.
      if (r.count > 0) {
        const bytes = me.mixed ? undefined : Buffer.from(data.subarray(0, r.count))
        seq = this.#append({ op: 'write', ref: f, offset, length: r.count, data: null }, [{ ref: f, atime: r.after.atime, mtime: r.after.mtime }], [], bytes)
      }
    } finally {
      this.#writing.end(f.id, me)
      release()
    }
    if (seq !== null && stable !== 'unstable') await this.#stable(seq)
    return { ...r, before: outAttr(r.before, f), after: outAttr(r.after, f) }
  }

  async setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    const local = this.#local(f)
    const release = await this.#locks.acquire([fileLock(f, 'exclusive')])
    let seq: bigint
    let r: { before: Attr; after: Attr }
    try {
      r = await this.#b.setattr(local, set)
      const times = await this.#times([[f, local]])
      seq = this.#append({ op: 'setattr', ref: f, set: resolveSetAttr(set, r.after) }, times)
    } finally {
      release()
    }
    await this.#stable(seq)
    return { before: outAttr(r.before, f), after: outAttr(r.after, f) }
  }

  async commit(f: FileRef, offset: bigint, count: number): Promise<{ before: Attr; after: Attr }> {
    const local = this.#local(f)
    // RFC 1813 §3.3.21: COMMIT covers every WRITE before it; the changes logged so far are those.
    // Their durability (the log's fdatasync, the standbys' acknowledgements) does not depend on the
    // backend's flush, so both run at once: the reply waits for the slower, not for their sum.
    const [r] = await Promise.all([this.#b.commit(local, offset, count), this.#stable(this.#lastSeq)])
    return { before: outAttr(r.before, f), after: outAttr(r.after, f) }
  }

  // ---- namespace ----

  async create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    return this.#make(dir, name, (d) => this.#b.create(d, name, mode, owner), (obj, existed, after) => {
      if (mode.how === 'exclusive') return [{ op: 'create', obj, exclusive: Buffer.from(mode.verifier) }]
      const body: ChangeBody[] = [{ op: 'create', obj, exclusive: null }]
      // RFC 1813 §3.3.8: UNCHECKED on an existing file applies the attributes (size 0 truncates); a
      // create that finds the name on a standby does not, and a new file's size is not in NewObject.
      if (existed) body.push({ op: 'setattr', ref: obj.ref, set: resolveSetAttr(mode.attr, after) })
      else if (mode.attr.size !== undefined && mode.attr.size !== 0n) body.push({ op: 'setattr', ref: obj.ref, set: { size: mode.attr.size } })
      return body
    })
  }

  async mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#make(dir, name, (d) => this.#b.mkdir(d, name, attr, owner), (obj) => [{ op: 'mkdir', obj }])
  }

  async symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#make(dir, name, (d) => this.#b.symlink(d, name, target, attr, owner), (obj) => [{ op: 'symlink', obj, target: Buffer.from(target) }])
  }

  async mknod(dir: FileRef, name: Buffer, type: Special, rdev: { major: number; minor: number }, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#make(dir, name, (d) => this.#b.mknod(d, name, type, rdev, attr, owner), (obj) => [
      { op: 'mknod', obj, type, rdev: { major: rdev.major, minor: rdev.minor } },
    ])
  }

  async remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#unlink(dir, name, 'remove')
  }

  async rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#unlink(dir, name, 'rmdir')
  }

  async rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, caller?: Caller): Promise<{ from: DirChange; to: DirChange }> {
    const fl = this.#local(fromDir)
    const tl = this.#local(toDir)
    const release = await this.#locks.acquire([nameLock(fromDir, fromName), nameLock(toDir, toName)])
    let seq: bigint
    let r: { from: DirChange; to: DirChange }
    try {
      const obj = await this.#victim(fl, fromName)
      const victim = await this.#victim(tl, toName)
      r = await this.#b.rename(fl, fromName, tl, toName, caller)
      // Two links of one object: rename(2) changes nothing, so there is nothing to log.
      if (obj !== null && victim !== null && sameRef(obj.local, victim.local)) {
        release()
        return { from: outDir(r.from, fromDir), to: outDir(r.to, toDir) }
      }
      this.#listings.invalidate(fromDir.id)
      this.#listings.invalidate(toDir.id)
      const edits: MapEdit[] = []
      if (victim !== null && (obj === null || !sameRef(victim.local, obj.local))) await this.#unbindIfGone(victim, edits)
      const objVid = obj === null ? undefined : (obj.vid ?? this.#vidFor(obj.local))
      // The moved object's `..` may have changed.
      if (objVid !== undefined) this.#listings.invalidate(objVid.id)
      const touched: [FileRef, FileRef][] = [[fromDir, fl], [toDir, tl]]
      if (obj !== null && objVid !== undefined) touched.unshift([objVid, obj.local])
      const times = await this.#times(touched)
      // After the moved object: the one it replaced (its times before, unchanged by the rename),
      // so that a replaying standby can tell a rename done from one to do.
      if (victim?.vid !== undefined && objVid !== undefined && times[0]?.ref.id === objVid.id) {
        times.splice(1, 0, { ref: victim.vid, atime: victim.attr.atime, mtime: victim.attr.mtime })
      }
      seq = this.#append({ op: 'rename', fromDir, fromName: Buffer.from(fromName), toDir, toName: Buffer.from(toName) }, times, edits)
    } finally {
      release()
    }
    await this.#stable(seq)
    return { from: outDir(r.from, fromDir), to: outDir(r.to, toDir) }
  }

  async link(f: FileRef, dir: FileRef, name: Buffer, caller?: Caller): Promise<{ attr: Attr; dir: DirChange }> {
    const local = this.#local(f)
    const dl = this.#local(dir)
    const release = await this.#locks.acquire([nameLock(dir, name)])
    let seq: bigint
    let r: { attr: Attr; dir: DirChange }
    try {
      r = await this.#b.link(local, dl, name, caller)
      this.#listings.invalidate(dir.id)
      const times = await this.#times([[f, local], [dir, dl]])
      seq = this.#append({ op: 'link', ref: f, dir, name: Buffer.from(name) }, times)
    } finally {
      release()
    }
    await this.#stable(seq)
    return { attr: outAttr(r.attr, f), dir: outDir(r.dir, dir) }
  }

  /**
   * The backend's commit of the objects (the primary's own durability, RFC 1813 §1.6); an object
   * no longer bound is gone and needs nothing. The standby makes its copy durable in its flush.
   */
  async commitMetadata(refs: readonly FileRef[]): Promise<void> {
    if (this.#b.commitMetadata === undefined) return
    const locals = refs.map(r => this.#map.local(r)).filter((l): l is FileRef => l !== undefined)
    if (locals.length > 0) await this.#b.commitMetadata(locals)
  }

  /** Closes the backend (the map and the sink are the caller's). */
  async close(): Promise<void> {
    await this.#b.close()
  }

  // ---- internals ----

  #local(vid: FileRef): FileRef {
    const local = this.#map.local(vid)
    if (local === undefined) throw new VfsError('ESTALE', `replica: vid ${vid.id.toString(16)}/${vid.gen} is not bound`)
    return local
  }

  #vidFor(local: FileRef): FileRef {
    const vid = this.#map.vidOf(local)
    if (vid !== undefined) return vid
    const fresh = this.#map.allocate()
    this.#map.bind(fresh, local)
    this.#fresh.add(fresh.id)
    return fresh
  }

  /** Waits for the map when any of `vids` was bound on first sight and is not yet durable. */
  async #settleFresh(vids: FileRef[]): Promise<void> {
    if (vids.some((v) => this.#fresh.has(v.id))) await this.#flushMap()
  }

  async #flushMap(): Promise<void> {
    const covered = [...this.#fresh]
    // The map now holds the edits of every change this layer appended (it binds before it
    // appends): a checkpoint, so that redoing the log at start begins after them and cannot
    // replay an older bind over this flush's first-sight binds.
    if (this.#sinkKeepsEdits && this.#lastSeq > 0n) this.#map.logged(this.#lastSeq)
    await this.#map.flush()
    for (const id of covered) this.#fresh.delete(id)
  }

  async #make(dir: FileRef, name: Buffer, op: (localDir: FileRef) => Promise<Created>, bodies: (obj: NewObject, existed: boolean, after: Attr) => ChangeBody[]): Promise<Created> {
    const dl = this.#local(dir)
    const release = await this.#locks.acquire([nameLock(dir, name)])
    let seq = 0n
    let r: Created
    let vid: FileRef
    try {
      r = await op(dl)
      const existing = this.#map.vidOf(r.ref)
      vid = existing ?? this.#map.allocate()
      const edits: MapEdit[] = []
      if (existing === undefined) {
        this.#map.bind(vid, r.ref)
        edits.push({ kind: 'bind', vid, local: r.ref })
      }
      this.#listings.invalidate(dir.id)
      // The backend's reply carries both objects' attributes after the call: no getattr here.
      const times: ChangeTimes[] = [{ ref: vid, atime: r.attr.atime, mtime: r.attr.mtime }, { ref: dir, atime: r.dir.after.atime, mtime: r.dir.after.mtime }]
      const obj: NewObject = { dir, name: Buffer.from(name), ref: vid, mode: r.attr.mode, uid: r.attr.uid, gid: r.attr.gid }
      // The bind goes with the first change (its seq is the lower; durable(seq) of the last covers both).
      for (const [i, body] of bodies(obj, existing !== undefined, r.attr).entries()) seq = this.#append(body, times, i === 0 ? edits : [])
    } finally {
      release()
    }
    await this.#stable(seq)
    return { ref: vid, attr: outAttr(r.attr, vid), dir: outDir(r.dir, dir) }
  }

  async #unlink(dir: FileRef, name: Buffer, op: 'remove' | 'rmdir'): Promise<DirChange> {
    const dl = this.#local(dir)
    const release = await this.#locks.acquire([nameLock(dir, name)])
    let seq: bigint
    let r: DirChange
    try {
      const victim = await this.#victim(dl, name)
      r = op === 'remove' ? await this.#b.remove(dl, name) : await this.#b.rmdir(dl, name)
      this.#listings.invalidate(dir.id)
      const times: ChangeTimes[] = []
      const edits: MapEdit[] = []
      if (victim !== null) {
        if (victim.vid !== undefined) {
          this.#listings.invalidate(victim.vid.id)
          // Unchanged by the unlink; names the removed object for a replaying standby.
          times.push({ ref: victim.vid, atime: victim.attr.atime, mtime: victim.attr.mtime })
        }
        await this.#unbindIfGone(victim, edits)
      }
      times.push(...(await this.#times([[dir, dl]])))
      seq = this.#append({ op, dir, name: Buffer.from(name) }, times, edits)
    } finally {
      release()
    }
    await this.#stable(seq)
    return outDir(r, dir)
  }

  /** What `name` in `dir` is now (null when nothing is). */
  async #victim(dir: FileRef, name: Buffer): Promise<Victim | null> {
    try {
      const r = await this.#b.lookup(dir, name)
      return { local: r.ref, vid: this.#map.vidOf(r.ref), attr: r.attr }
    } catch {
      // The call itself will fail (or find the name) and say why.
      return null
    }
  }

  /** Unbinds the victim's vid when its object is gone (its last link removed), adding the edit to `edits`. */
  async #unbindIfGone(v: Victim, edits: MapEdit[]): Promise<void> {
    if (v.vid === undefined) return
    try {
      await this.#b.getattr(v.local)
    } catch (err) {
      if (!isGone(err)) throw err
      this.#map.unbind(v.vid)
      edits.push({ kind: 'unbind', vid: v.vid })
    }
  }

  /** The atime/mtime the backend reports now for each object (one per vid; objects gone are left out). */
  async #times(objs: [FileRef, FileRef][]): Promise<ChangeTimes[]> {
    const seen = new Set<bigint>()
    const unique = objs.filter(([vid]) => !seen.has(vid.id) && seen.add(vid.id))
    const attrs = await Promise.all(unique.map(([, local]) => this.#b.getattr(local).catch((err: unknown) => {
      if (isGone(err)) return null
      throw err
    })))
    const out: ChangeTimes[] = []
    unique.forEach(([vid], i) => {
      const a = attrs[i]
      if (a !== undefined && a !== null) out.push({ ref: vid, atime: a.atime, mtime: a.mtime })
    })
    return out
  }

  #append(body: ChangeBody, times: ChangeTimes[], edits: readonly MapEdit[] = [], data?: Buffer): bigint {
    const change: Change = { ...body, times }
    this.#lastSeq = this.#sink.append(change, edits, data)
    return this.#lastSeq
  }

  async #stable(seq: bigint): Promise<void> {
    // With the edits in the sink, only vids bound on first sight (in no change) need the map's fsync.
    const map = !this.#sinkKeepsEdits || this.#fresh.size > 0 ? this.#flushMap() : Promise.resolve()
    const split = this.#sink.split
    const held = seq > 0n && split !== undefined ? heldScope() : undefined
    if (held === undefined || split === undefined) {
      await Promise.all([map, seq > 0n ? this.#sink.durable(seq) : Promise.resolve()])
      return
    }
    // The caller holds the reply until the local log and the standbys have the change
    // (held-changes.ts); the reply is built meanwhile, in time to ride in the change's APPEND.
    const here = split.durableHere(seq)
    // Handled here too: a call whose reply is never sent (null) awaits nothing of it.
    here.catch(() => undefined)
    held.push({ exportId: split.exportId, seq, replicated: split.replicated(seq), durableHere: here })
    await map
  }
}
