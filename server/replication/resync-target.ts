/*
 * A standby's side of a full resync (server/replication/README.md "Full
 * resync"): makes one directory at a time match the primary's listing, in
 * the shared id space, and takes file data for what differs.
 *
 * A directory part (RESYNC_DIR) names the entries whose cookies (name
 * hashes, vfs/replica/dir-cookies.ts) lie in a range. For each entry:
 * - the name holds the entry's vid, of its type: kept, its attributes fixed;
 * - the name holds an object bound to no vid, of the entry's type, and the
 *   vid is bound to nothing here: adopted (a copy restored by hand);
 * - otherwise what the name holds goes (a whole subtree), and the vid's
 *   object, if this node has it elsewhere, is linked (a file: a hard link or
 *   a rename the primary made) or moved here (a directory); else it is made.
 * Names in the range the primary does not list go too (whole subtrees).
 * Files whose size or mtime differ are truncated to the primary's size and
 * answered REPL_RS_DATA, their mtime left as it is until the data's last
 * part sets it: a resync cut short never leaves a file that looks current.
 * Files whose size and mtime agree are answered REPL_RS_SUMS when the
 * primary asks (verify), and their SHA-256 per 1 MiB range is sums().
 *
 * Durability: the id map is flushed before a part is answered, and a
 * file's data committed before its last part is answered; the backend's
 * namespace changes are as durable as the backend makes them. None of it
 * counts until end(): the standby keeps its "needs resync" mark until then,
 * so a resync cut short (either side restarting) starts over, and converges
 * quickly since what matches is not sent again.
 */
import { createHash } from 'node:crypto'
import { VfsError } from '../../vfs/errors.ts'
import type { Applier } from '../../vfs/replica/applier.ts'
import { DOT_COOKIE, DOTDOT_COOKIE } from '../../vfs/replica/dir-cookies.ts'
import type { Listing } from '../../vfs/replica/dir-cookies.ts'
import type { IdMap } from '../../vfs/replica/id-map.ts'
import { readListing } from '../../vfs/replica/listing-reader.ts'
import { storableTime, storableTimes } from '../../vfs/replica/storable-time.ts'
import { isGone, sameRef } from '../../vfs/replica/translate.ts'
import type { Attr, FileRef, FileType, SetAttr, Timespec, Vfs } from '../../vfs/types.ts'
import { REPL_MAXSUMS, REPL_SUMRANGE } from '../../xdr/generated/replication.ts'

/** An object as the primary has it (repl_rs_attr). */
export interface ResyncAttr {
  type: FileType
  mode: number
  uid: number
  gid: number
  size: bigint
  atime: Timespec
  mtime: Timespec
  rdev: { major: number; minor: number }
  /** A symlink's target (empty otherwise). */
  target: Buffer
}

export interface ResyncEntry {
  name: Buffer
  ref: FileRef
  attr: ResyncAttr
  verify: boolean
}

export interface ResyncDirPart {
  dir: FileRef
  dirAttr: ResyncAttr
  /** Entries with cookies in (cookieFrom, cookieTo]. */
  cookieFrom: bigint
  cookieTo: bigint
  entries: readonly ResyncEntry[]
}

export interface ResyncNeed {
  ref: FileRef
  want: 'data' | 'sums'
}

/** The standby's side, per export (standby-service.ts calls it, one call at a time). */
export interface ResyncTarget {
  begin(p0: bigint): Promise<void>
  dir(part: ResyncDirPart): Promise<ResyncNeed[]>
  sums(ref: FileRef, firstRange: bigint, count: number): Promise<Buffer[]>
  data(ref: FileRef, offset: bigint, data: Buffer, last: boolean, atime: Timespec, mtime: Timespec): Promise<void>
  end(p0: bigint, walkedUntil: bigint): Promise<void>
}

interface Here {
  ref: FileRef
  attr: Attr
}

/** Deeper trees than this are refused (a loop in a broken backend, not a tree). */
const MAX_DEPTH = 4096
/** A directory's last part ends at the largest cookie (resync.ts). */
const MAX_COOKIE = (1n << 64n) - 1n
/** Listings kept between parts: the primary has two directories in flight; more are ones whose parts stopped coming. */
const MAX_LISTINGS = 8

export class ResyncApplier implements ResyncTarget {
  readonly #b: Vfs
  readonly #map: IdMap
  readonly #applier: Applier
  /**
   * The listing of each directory whose parts are under way, read at its first part and kept
   * until its last: a directory of N entries cut into P parts is read once, not P times (N × P
   * reads for a huge one). It stays right for the parts to come: a part only adds names in its
   * own cookie range, and any other change here only removes names (a directory moved away
   * through its `..`, a subtree removed), which the extras loop finds gone and skips.
   */
  readonly #listings = new Map<string, Listing>()
  /** Backend directory reads by dir() (for the tests and the bench). */
  listingReads = 0

  constructor(o: { backend: Vfs; map: IdMap; applier: Applier }) {
    this.#b = o.backend
    this.#map = o.map
    this.#applier = o.applier
  }

  /** Nothing to undo: every part converges on what is there, and the mark (standby-service.ts) says a resync is running. */
  begin(): Promise<void> {
    this.#listings.clear()
    return Promise.resolve()
  }

  async dir(part: ResyncDirPart): Promise<ResyncNeed[]> {
    const d = this.#map.local(part.dir)
    if (d === undefined || !(await this.#exists(d))) throw new VfsError('ESTALE', `resync: directory vid ${part.dir.id.toString(16)} is not here (its parent's part comes first)`)
    const dattr = await this.#b.getattr(d)
    await this.#fixOwner(d, dattr, part.dirAttr)
    const list = await this.#listing(d, part)
    const want = new Set(part.entries.map((e) => e.name.toString('latin1')))
    const needs: ResyncNeed[] = []
    const asked = new Set<bigint>()
    for (const e of part.entries) {
      const need = await this.#entry(d, e)
      // Two names of one file in one part (hard links in one directory): the second finds the
      // size set by the first but not yet the data or times; ask for the data once.
      if (need !== null && !asked.has(need.ref.id)) {
        asked.add(need.ref.id)
        needs.push(need)
      }
    }
    // Extras last, so a file the primary renamed within the directory is linked at its new name before its old one goes.
    for (let i = firstAfter(list, part.cookieFrom); i < list.length; i++) {
      const e = list[i] as Listing[number]
      if (e.cookie > part.cookieTo) break
      if (e.cookie !== DOT_COOKIE && e.cookie !== DOTDOT_COOKIE && !want.has(e.name.toString('latin1'))) await this.#removeTree(d, e.name, 0)
    }
    // Last: the entries made above changed the directory's times.
    await this.#setTimes(d, part.dirAttr)
    await this.#map.flush()
    return needs
  }

  async sums(ref: FileRef, firstRange: bigint, count: number): Promise<Buffer[]> {
    if (!Number.isInteger(count) || count < 0 || count > REPL_MAXSUMS) throw new VfsError('EINVAL', `resync: ${count} checksums asked, at most ${REPL_MAXSUMS}`)
    const local = this.#map.local(ref)
    if (local === undefined) throw new VfsError('ESTALE', `resync: file vid ${ref.id.toString(16)} is not here`)
    return rangeSums(this.#b, local, firstRange, count)
  }

  async data(ref: FileRef, offset: bigint, data: Buffer, last: boolean, atime: Timespec, mtime: Timespec): Promise<void> {
    const local = this.#map.local(ref)
    if (local === undefined) throw new VfsError('ESTALE', `resync: file vid ${ref.id.toString(16)} is not here`)
    if (data.length > 0) await this.#b.write(local, offset, data, 'unstable')
    if (!last) return
    await this.#b.commit(local, 0n, 0)
    await this.#b.setattr(local, storableTimes(atime, mtime))
  }

  async end(p0: bigint, walkedUntil: bigint): Promise<void> {
    this.#listings.clear()
    await this.#applier.rebase(p0, walkedUntil)
  }

  /** The directory's listing for this part: read at its first part (or when not kept), kept until its last. */
  async #listing(d: FileRef, part: ResyncDirPart): Promise<Listing> {
    const key = `${String(d.id)}:${String(d.gen)}`
    let list = part.cookieFrom === 0n ? undefined : this.#listings.get(key)
    if (list === undefined) {
      list = await readListing(this.#b, d)
      this.listingReads++
    }
    this.#listings.delete(key)
    if (part.cookieTo !== MAX_COOKIE) {
      this.#listings.set(key, list)
      // Oldest first out: a directory whose last part never came (the resync cut short).
      for (const k of this.#listings.keys()) {
        if (this.#listings.size <= MAX_LISTINGS) break
        this.#listings.delete(k)
      }
    }
    return list
  }

  /** Makes one entry match; what the primary must send for it, if anything. */
  async #entry(d: FileRef, e: ResyncEntry): Promise<ResyncNeed | null> {
    let here = await this.#lookup(d, e.name)
    if (here !== null && !this.#fits(here, e)) {
      await this.#removeTree(d, e.name, 0)
      here = null
    }
    if (here === null) here = await this.#place(d, e)
    if (here === null) return null
    const a = here.attr
    await this.#fixOwner(here.ref, a, e.attr)
    if (e.attr.type === 'dir') return null
    if (e.attr.type !== 'file') {
      await this.#setTimes(here.ref, e.attr)
      return null
    }
    if (a.size !== e.attr.size || !sameTime(a.mtime, storableTime(e.attr.mtime))) {
      if (a.size !== e.attr.size) await this.#b.setattr(here.ref, { size: e.attr.size })
      // No data to send: the size is right already, only the times were not.
      if (e.attr.size === 0n) {
        await this.#setTimes(here.ref, e.attr)
        return null
      }
      return { ref: e.ref, want: 'data' }
    }
    await this.#setTimes(here.ref, e.attr)
    return e.verify && e.attr.size > 0n ? { ref: e.ref, want: 'sums' } : null
  }

  /** Whether what a name holds can stay as the entry (adopting it when it is bound to nothing). */
  #fits(here: Here, e: ResyncEntry): boolean {
    if (here.attr.type !== e.attr.type) return false
    if ((e.attr.type === 'block' || e.attr.type === 'char') && (here.attr.rdev.major !== e.attr.rdev.major || here.attr.rdev.minor !== e.attr.rdev.minor)) return false
    const vid = this.#map.vidOf(here.ref)
    if (vid !== undefined) return sameRef(vid, e.ref)
    const bound = this.#map.local(e.ref)
    if (bound !== undefined && !sameRef(bound, here.ref)) return false
    this.#map.bind(e.ref, here.ref)
    return true
  }

  /** Puts the entry's object at its name: the one this node has under its vid elsewhere, else a new one. */
  async #place(d: FileRef, e: ResyncEntry): Promise<Here | null> {
    const bound = this.#map.local(e.ref)
    const there = bound === undefined ? null : await this.#attr(bound)
    if (bound !== undefined && there !== null && there.type === e.attr.type) {
      if (e.attr.type !== 'dir') {
        // A hard link, or a file the primary renamed: the old name goes when its directory's turn comes.
        await this.#b.link(bound, d, e.name)
        return this.#lookup(d, e.name)
      }
      if (await this.#moveDir(bound, d, e.name)) return this.#lookup(d, e.name)
    }
    if (bound !== undefined) this.#map.unbind(e.ref)
    return this.#make(d, e)
  }

  /** Moves a directory this node has elsewhere to `name` in `d` (found through its `..`); false when it cannot. */
  async #moveDir(dir: FileRef, d: FileRef, name: Buffer): Promise<boolean> {
    try {
      const parent = (await this.#b.lookup(dir, Buffer.from('..'))).ref
      if (sameRef(parent, dir)) return false
      for (const e of await readListing(this.#b, parent)) {
        if (e.cookie === DOT_COOKIE || e.cookie === DOTDOT_COOKIE) continue
        const id = e.localRef?.id ?? e.localId
        if (id !== dir.id) continue
        await this.#b.rename(parent, e.name, d, name)
        return true
      }
      return false
    } catch (err) {
      // A move into its own subtree (EINVAL), or a backend without `..`: made anew instead.
      if (err instanceof VfsError) return false
      throw err
    }
  }

  async #make(d: FileRef, e: ResyncEntry): Promise<Here> {
    const a = e.attr
    const owner = { uid: a.uid, gid: a.gid }
    const attr: SetAttr = { mode: a.mode }
    let made
    switch (a.type) {
      case 'file':
        made = await this.#b.create(d, e.name, { how: 'guarded', attr }, owner)
        break
      case 'dir':
        made = await this.#b.mkdir(d, e.name, attr, owner)
        break
      case 'symlink':
        made = await this.#b.symlink(d, e.name, a.target, attr, owner)
        break
      default:
        made = await this.#b.mknod(d, e.name, a.type, a.rdev, attr, owner)
    }
    this.#map.bind(e.ref, made.ref)
    return { ref: made.ref, attr: made.attr }
  }

  /** Removes `name` from `d`, a directory with everything under it; the vids of objects gone are unbound. */
  async #removeTree(d: FileRef, name: Buffer, depth: number): Promise<void> {
    if (depth > MAX_DEPTH) throw new VfsError('ELOOP', 'resync: tree deeper than 4096 levels')
    const here = await this.#lookup(d, name)
    if (here === null) return
    if (here.attr.type === 'dir') {
      for (const e of await readListing(this.#b, here.ref)) {
        if (e.cookie !== DOT_COOKIE && e.cookie !== DOTDOT_COOKIE) await this.#removeTree(here.ref, e.name, depth + 1)
      }
      await this.#b.rmdir(d, name)
    } else {
      await this.#b.remove(d, name)
    }
    const vid = this.#map.vidOf(here.ref)
    if (vid !== undefined && (await this.#attr(here.ref)) === null) this.#map.unbind(vid)
  }

  async #fixOwner(local: FileRef, have: Attr, want: ResyncAttr): Promise<void> {
    const set: SetAttr = {}
    // A symlink's mode means nothing on most systems, and some cannot set it.
    if (have.mode !== want.mode && want.type !== 'symlink') set.mode = want.mode
    if (have.uid !== want.uid) set.uid = want.uid
    if (have.gid !== want.gid) set.gid = want.gid
    if (Object.keys(set).length > 0) await this.#b.setattr(local, set)
  }

  async #setTimes(local: FileRef, want: ResyncAttr): Promise<void> {
    await this.#b.setattr(local, storableTimes(want.atime, want.mtime))
  }

  async #lookup(d: FileRef, name: Buffer): Promise<Here | null> {
    try {
      const r = await this.#b.lookup(d, name)
      return { ref: r.ref, attr: r.attr }
    } catch (err) {
      if (isGone(err)) return null
      throw err
    }
  }

  async #attr(local: FileRef): Promise<Attr | null> {
    try {
      return await this.#b.getattr(local)
    } catch (err) {
      if (isGone(err)) return null
      throw err
    }
  }

  async #exists(local: FileRef): Promise<boolean> {
    return (await this.#attr(local)) !== null
  }
}

/** Index of the first entry of a listing (sorted by cookie) with a cookie above `cookie`. */
function firstAfter(list: Listing, cookie: bigint): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((list[mid] as Listing[number]).cookie <= cookie) lo = mid + 1
    else hi = mid
  }
  return lo
}

function sameTime(a: Timespec, b: Timespec): boolean {
  return a.sec === b.sec && a.nsec === b.nsec
}

/** SHA-256 of `count` ranges of REPL_SUMRANGE bytes from `firstRange` (ranges past the end are empty: the hash of nothing). */
export async function rangeSums(b: { read: Vfs['read'] }, local: FileRef, firstRange: bigint, count: number): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const start = (firstRange + BigInt(i)) * BigInt(REPL_SUMRANGE)
    const h = createHash('sha256')
    let got = 0
    while (got < REPL_SUMRANGE) {
      const r = await b.read(local, start + BigInt(got), REPL_SUMRANGE - got)
      h.update(r.data)
      got += r.data.length
      r.release?.()
      if (r.eof || r.data.length === 0) break
    }
    out.push(h.digest())
  }
  return out
}
