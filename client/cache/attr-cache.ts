/*
 * The attribute cache (DESIGN.md §3.10, nfs(5) "ac"): attributes by file
 * handle, fed by every reply that carries any, fresh for an adaptive time.
 * Linux's rule (fs/nfs/inode.c nfs_update_inode): a refresh that shows a
 * change resets the timeout to the minimum; one that shows none after the
 * timeout has run doubles it, up to the maximum. Files live acregmin..acregmax,
 * directories acdirmin..acdirmax. A change of mtime, ctime or size emits a
 * change event: the name cache drops a directory's entries, the block cache a
 * file's blocks.
 *
 * Each entry also keeps what ACCESS told each identity (uid, gid, groups:
 * client/identity.ts) about the object, as Linux's access cache does
 * (fs/nfs/dir.c nfs_access_get_cached): an answer holds while the
 * attributes are fresh, for at most the type's maximum attribute time, and
 * is dropped when the mode or owner changes. Attributes themselves are the
 * same for every caller and shared.
 *
 * One answer outlives a mode change: the maker's search permission on a
 * directory it made through this client (noteMaker, from walk.ts
 * noteCreated, whose rule it is: the server made the maker the owner, and
 * an AUTH_SYS server judges owners by the owner bits), after our own call
 * changed the mode (its pre-operation attributes are the cached ones, the
 * owner the same) to one the owner may still execute. rsync -a makes each
 * directory 0700 and then fchmods it to its mode: without this, the first
 * name it looks up in the directory afterwards (a file it is about to
 * create) went to the server as a LOOKUP, one per directory copied.
 */
import { LRUCache } from 'lru-cache'
import { ACCESS3_LOOKUP, ftype3 } from '../../xdr/generated/nfs3.ts'
import type { fattr3, nfstime3, wcc_attr, wcc_data } from '../../xdr/generated/nfs3.ts'
import { keyOf, ownCopy } from './own-copy.ts'

export interface AttrCacheOptions {
  acregminMs: number
  acregmaxMs: number
  acdirminMs: number
  acdirmaxMs: number
  /** Keep attributes (for change detection) but never consider them fresh. */
  noac: boolean
  maxEntries: number
  /** For tests; Date.now by default. */
  now?: () => number
}

export interface AttrChangeEvent {
  /** The handle in hex, the key of every client cache. */
  key: string
  fh: Buffer
  before: fattr3
  /** null: the object is gone (the server said STALE), or forgotten. */
  after: fattr3 | null
}

export type AttrChangeListener = (ev: AttrChangeEvent) => void

/** The server called a handle STALE (RFC 1813 §2.6): whatever names it is wrong now. */
export type StaleListener = (fh: Buffer) => void

/** ACCESS bits an identity asked about, those granted, and when (RFC 1813 §3.3.4). */
interface AccessAnswer {
  asked: number
  granted: number
  at: number
}

/** Identities remembered per object (the oldest answer goes first). */
const MAX_IDENTITIES = 16

interface Entry {
  readonly fh: Buffer
  attrs: fattr3
  /** The generation as of which attrs hold: the newest call whose reply set them, or an invalidation. */
  gen: number
  /** By identity key; null until something is known. */
  access: Map<string, AccessAnswer> | null
  /** The identity that made the object through this client (noteMaker): its owner while uid stays the same. */
  maker: string | null
  /** When the attributes were last refreshed. */
  fetchedAt: number
  /** Current adaptive timeout, and when it was last set (Linux attrtimeo / attrtimeo_timestamp). */
  timeoutMs: number
  timeoutSetAt: number
}

/** The handle in hex (own-copy.ts keeps it with the copies the caches hold). */
export function handleKey(fh: Buffer): string {
  return keyOf(fh)
}

function sameTime(a: nfstime3, b: nfstime3): boolean {
  return a.seconds === b.seconds && a.nseconds === b.nseconds
}

/**
 * For attributes fed without a call generation: how long after an update an older-ctime reply
 * is taken for a late answer to an earlier call.
 */
const REORDER_WINDOW_MS = 5000

function newerCtime(incoming: fattr3, cached: fattr3): boolean {
  const a = incoming.ctime
  const b = cached.ctime
  return a.seconds > b.seconds || (a.seconds === b.seconds && a.nseconds > b.nseconds)
}

function olderCtime(incoming: fattr3, cached: fattr3): boolean {
  if (incoming.fileid !== cached.fileid) return false
  const a = incoming.ctime
  const b = cached.ctime
  return a.seconds < b.seconds || (a.seconds === b.seconds && a.nseconds < b.nseconds)
}

/** What counts as a change for cached data and names (nfs(5) DATA AND METADATA COHERENCE). */
function changed(a: fattr3, b: fattr3): boolean {
  return a.size !== b.size || !sameTime(a.mtime, b.mtime) || !sameTime(a.ctime, b.ctime) || a.fileid !== b.fileid || a.type !== b.type
}

/** What an AUTH_SYS permission check reads of the attributes. */
function permsChanged(a: fattr3, b: fattr3): boolean {
  return a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.fileid !== b.fileid
}

function matchesPreOp(a: fattr3, pre: wcc_attr): boolean {
  return a.size === pre.size && sameTime(a.mtime, pre.mtime) && sameTime(a.ctime, pre.ctime)
}

export class AttrCache {
  private readonly opts: AttrCacheOptions
  private readonly now: () => number
  private readonly entries: LRUCache<string, Entry>
  private readonly listeners = new Set<AttrChangeListener>()
  private readonly staleListeners = new Set<StaleListener>()
  /** Counters, read by ClientStats. */
  updates = 0
  changes = 0
  /** Replies ignored because a newer state (by ctime) was already cached. */
  lateReplies = 0
  /** The last call generation handed out (callStarted) or taken by an invalidation. */
  #gen = 0

  constructor(opts: AttrCacheOptions) {
    this.opts = opts
    this.now = opts.now ?? Date.now
    // Bounded by a size of 1 per entry rather than by max: lru-cache allocates and fills arrays of
    // max slots up front, which cost every mount (and every CLI command) 20-45 ms at 65,536 entries.
    this.entries = new LRUCache({ maxSize: Math.max(1, opts.maxEntries), sizeCalculation: () => 1 })
  }

  get options(): Readonly<AttrCacheOptions> {
    return this.opts
  }

  /** Listen for changes seen from the server; returns the unsubscribe function. */
  onChange(listener: AttrChangeListener): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  /** Listen for handles the server said are STALE (whether or not their attributes were cached). */
  onStale(listener: StaleListener): void {
    this.staleListeners.add(listener)
  }

  /** Fresh attributes, or undefined (absent, expired, invalidated, or noac). */
  get(fh: Buffer): fattr3 | undefined {
    const e = this.entries.get(handleKey(fh))
    return e !== undefined && this.fresh(e) ? e.attrs : undefined
  }

  /** The last attributes known, however old (type and fileid never change for a handle). */
  peek(fh: Buffer): fattr3 | undefined {
    return this.entries.peek(handleKey(fh))?.attrs
  }

  isFresh(fh: Buffer): boolean {
    return this.get(fh) !== undefined
  }

  /** How much longer fh's cached attributes stay fresh (ms); 0 when they are not (absent, expired, noac). */
  freshForMs(fh: Buffer): number {
    const e = this.entries.peek(handleKey(fh))
    return e === undefined || !this.fresh(e) ? 0 : e.fetchedAt + e.timeoutMs - this.now()
  }

  /** The adaptive timeout currently applied to a handle (ms), for tests and diagnostics. */
  timeoutOf(fh: Buffer): number | undefined {
    return this.entries.peek(handleKey(fh))?.timeoutMs
  }

  /**
   * A call is about to be sent: its generation, to pass with the attributes its reply carries.
   * Later calls get higher numbers.
   */
  callStarted(): number {
    return ++this.#gen
  }

  /**
   * Is attrs, from a call of generation gen, an answer older than what is cached? Replies can
   * arrive out of order: a GETATTR sent before our SETATTR may be answered after it. As Linux
   * (fs/nfs/inode.c nfs_inode_attrs_need_update): a reply to a call sent before the cached
   * attributes were set is news only when its ctime is newer; equal ctimes (a server whose clock
   * ticks coarsely, two changes in one tick) say nothing, and the call order decides. Without a
   * generation, a ctime older than the cached one within a window is taken for a late reply;
   * after the window the server is trusted (its clock may have stepped back).
   */
  #late(e: Entry, attrs: fattr3, gen: number | undefined, now: number): boolean {
    if (attrs.fileid !== e.attrs.fileid) return false
    if (gen !== undefined) return gen < e.gen && !newerCtime(attrs, e.attrs)
    return olderCtime(attrs, e.attrs) && now - e.fetchedAt < REORDER_WINDOW_MS
  }

  /** Feed attributes the server returned for fh, in the reply to a call of generation gen (callStarted). */
  update(fh: Buffer, attrs: fattr3, gen?: number): void {
    const key = handleKey(fh)
    const now = this.now()
    const e = this.entries.get(key)
    if (e !== undefined && this.#late(e, attrs, gen, now)) {
      this.lateReplies++
      return
    }
    this.updates++
    if (e === undefined) {
      const t = this.minOf(attrs)
      this.entries.set(key, { fh: ownCopy(fh), attrs, gen: gen ?? this.#gen, access: null, maker: null, fetchedAt: now, timeoutMs: t, timeoutSetAt: now })
      return
    }
    const before = e.attrs
    if (permsChanged(before, attrs)) e.access = null
    if (before.uid !== attrs.uid || before.fileid !== attrs.fileid) e.maker = null
    e.attrs = attrs
    e.gen = Math.max(e.gen, gen ?? this.#gen)
    e.fetchedAt = now
    if (changed(before, attrs)) {
      e.timeoutMs = this.minOf(attrs)
      e.timeoutSetAt = now
      this.emit({ key, fh: e.fh, before, after: attrs })
    } else if (now >= e.timeoutSetAt + e.timeoutMs) {
      e.timeoutMs = Math.min(e.timeoutMs * 2, this.maxOf(attrs))
      e.timeoutSetAt = now
    }
  }

  /**
   * Feed weak cache consistency data (RFC 1813 §2.6): when the pre-operation
   * attributes match the cache, only this client's own operation changed the
   * object, so the post-operation attributes replace the cached ones without a
   * change event (our own CREATE does not flush our own name cache, our own
   * WRITE does not drop our own blocks). Otherwise they are fed as any refresh.
   */
  applyWcc(fh: Buffer, wcc: wcc_data, gen?: number): void {
    const key = handleKey(fh)
    const e = this.entries.get(key)
    const ours = e !== undefined && wcc.before !== null && matchesPreOp(e.attrs, wcc.before)
    if (wcc.after === null) {
      if (e !== undefined) {
        // The operation may have changed the mode (a SETATTR, a WRITE clearing setuid): ask again.
        e.access = null
        if (ours) e.fetchedAt = -Infinity
        else this.invalidate(fh)
      }
      return
    }
    if (e !== undefined && ours) {
      const now = this.now()
      this.updates++
      if (permsChanged(e.attrs, wcc.after)) e.access = this.#makersAfterOwnChange(e, wcc.after, now)
      if (e.attrs.uid !== wcc.after.uid || e.attrs.fileid !== wcc.after.fileid) e.maker = null
      e.attrs = wcc.after
      // The successor of the cached state, whenever the call was sent.
      e.gen = Math.max(e.gen, gen ?? this.#gen)
      e.fetchedAt = now
      e.timeoutMs = this.minOf(wcc.after)
      e.timeoutSetAt = now
      return
    }
    this.update(fh, wcc.after, gen)
  }

  /**
   * Note what identity `who` was told about fh: of the ACCESS bits asked,
   * those granted (an ACCESS reply, or an operation whose outcome implies
   * one, such as a LOOKUP that found or missed a name). Kept only while
   * the attributes are cached.
   */
  noteAccess(fh: Buffer, who: string, asked: number, granted: number): void {
    const e = this.entries.peek(handleKey(fh))
    if (e === undefined || this.opts.noac) return
    const now = this.now()
    e.access ??= new Map()
    const old = e.access.get(who)
    const valid = old !== undefined && this.answerFresh(e, old, now)
    const a: AccessAnswer = valid ? { asked: old.asked | asked, granted: (old.granted & ~asked) | (granted & asked), at: Math.min(old.at, now) } : { asked, granted: granted & asked, at: now }
    e.access.delete(who)
    e.access.set(who, a)
    if (e.access.size > MAX_IDENTITIES) {
      const oldest = e.access.keys().next()
      if (oldest.done !== true) e.access.delete(oldest.value)
    }
  }

  /**
   * who made fh through this client (a create-like call of its own): the
   * server made it the owner, as whatever identity it maps it to. Kept
   * while the attributes are cached and the owner stays the same.
   */
  noteMaker(fh: Buffer, who: string): void {
    const e = this.entries.peek(handleKey(fh))
    if (e !== undefined) e.maker = who
  }

  /**
   * The access answers left after our own call changed e's mode or owner
   * to `after` (pre-operation attributes matched): none, but for the
   * maker's search permission on a directory whose owner may still execute
   * it (the header comment). Only a grant is inferred, never a refusal (a
   * server may let root search what the owner bits forbid).
   */
  #makersAfterOwnChange(e: Entry, after: fattr3, now: number): Map<string, AccessAnswer> | null {
    const before = e.attrs
    if (e.maker === null || this.opts.noac || after.uid !== before.uid || after.fileid !== before.fileid) return null
    if (after.type !== ftype3.NF3DIR || (after.mode & 0o100) === 0) return null
    return new Map([[e.maker, { asked: ACCESS3_LOOKUP, granted: ACCESS3_LOOKUP, at: now }]])
  }

  /**
   * The bits of `want` granted to identity `who`, or undefined when the
   * cache cannot say: not all of want was asked, the attributes are not
   * fresh, or the answer is older than the type's maximum attribute time.
   */
  accessOf(fh: Buffer, who: string, want: number): number | undefined {
    const e = this.entries.peek(handleKey(fh))
    const a = e?.access?.get(who)
    if (e === undefined || a === undefined || (a.asked & want) !== want) return undefined
    if (!this.fresh(e) || !this.answerFresh(e, a, this.now())) return undefined
    return a.granted & want
  }

  /** Make the next get() miss; the old attributes stay for change detection (Linux NFS_INO_INVALID_ATTR). */
  invalidate(fh: Buffer): void {
    const e = this.entries.peek(handleKey(fh))
    if (e === undefined) return
    e.fetchedAt = -Infinity
    // A reply to a call sent before now must not make them fresh again unless it shows a change.
    e.gen = ++this.#gen
  }

  /** Drop a handle (the server said STALE): change listeners hear after = null, stale listeners the handle. */
  forget(fh: Buffer): void {
    const key = handleKey(fh)
    const e = this.entries.peek(key)
    for (const l of this.staleListeners) l(fh)
    if (e === undefined) return
    this.entries.delete(key)
    this.emit({ key, fh: e.fh, before: e.attrs, after: null })
  }

  clear(): void {
    this.entries.clear()
  }

  private fresh(e: Entry): boolean {
    return !this.opts.noac && this.now() < e.fetchedAt + e.timeoutMs
  }

  private answerFresh(e: Entry, a: AccessAnswer, now: number): boolean {
    return now - a.at < this.maxOf(e.attrs)
  }

  private minOf(a: fattr3): number {
    return a.type === ftype3.NF3DIR ? this.opts.acdirminMs : this.opts.acregminMs
  }

  private maxOf(a: fattr3): number {
    return a.type === ftype3.NF3DIR ? this.opts.acdirmaxMs : this.opts.acregmaxMs
  }

  private emit(ev: AttrChangeEvent): void {
    this.changes++
    for (const l of this.listeners) l(ev)
  }
}
