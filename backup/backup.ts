/*
 * writeBackup: one level of one tree of any Vfs as a pax tar stream. The walk is depth first from
 * tree.root by readdir/lookup; every directory goes into the stream with its full listing
 * (GNU.dumpdir), so a restore of a chain can remove what was deleted. Level N copies what changed
 * since its base (dump's rule): mtime or ctime at or after the base's start, or a name that is new
 * or names another fileid than in the base's listing (a rename); a new or renamed directory brings
 * its whole subtree. A trailing pax global header carries the index (path, offset, size, SHA-256)
 * that verify uses without the catalog.
 */
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Attr, FileRef, FileType, Timespec } from '../vfs/types.ts'
import type { BackupRequest, BackupSummary, BackupTree, ByteSink, DirListing, FileHistoryEntry } from './types.ts'
import { compressingSink } from './compress.ts'
import { encodeDumpdir, DUMPDIR_KEY } from './dumpdir.ts'
import type { DumpdirEntry } from './dumpdir.ts'
import { copyFile, findRegions } from './file-copy.ts'
import type { Region } from './file-copy.ts'
import { Excluder } from './glob.ts'
import { encodeIndex } from './index-record.ts'
import type { IndexRow } from './index-record.ts'
import { TarWriter } from './tar/writer.ts'
import type { TarType } from './tar/writer.ts'

/** Looks up a base's listing by its id (the level store keeps them). */
export type ListingLookup = (listingId: string) => Promise<DirListing | null>

const READDIR_PAGE = 1024
/** Lookups in flight at once while a directory's entries are stat'ed. */
const LOOKUP_BATCH = 32

export function wallClock(): Timespec {
  const ms = performance.timeOrigin + performance.now()
  const sec = Math.floor(ms / 1000)
  return { sec, nsec: Math.min(999_999_999, Math.floor((ms - sec * 1000) * 1e6)) }
}

function atOrAfter(a: Timespec, b: Timespec): boolean {
  return a.sec > b.sec || (a.sec === b.sec && a.nsec >= b.nsec)
}

function sameTime(a: Timespec, b: Timespec): boolean {
  return a.sec === b.sec && a.nsec === b.nsec
}

interface Child {
  name: Buffer
  path: string
  ref: FileRef
  attr: Attr
}

class BackupRun {
  readonly #tree: BackupTree
  readonly #req: BackupRequest
  readonly #out: TarWriter
  readonly #excl: Excluder
  readonly #base: DirListing | null
  readonly #since: Timespec | null
  #baseDir: { path: string; ids: Map<string, bigint> | undefined } | null = null
  readonly listing: DirListing = new Map()
  readonly changed: string[] = []
  readonly index: IndexRow[] = []
  /** fileid -> the path stored first, for hard links. */
  readonly #linked = new Map<bigint, string>()
  files = 0
  dirs = 0

  constructor(tree: BackupTree, req: BackupRequest, out: TarWriter, base: DirListing | null) {
    this.#tree = tree
    this.#req = req
    this.#out = out
    this.#excl = new Excluder(req.exclude)
    this.#base = base
    this.#since = req.base?.startedAt ?? null
  }

  #log(level: 'info' | 'warn' | 'error', msg: string): void {
    this.#req.onLog?.(level, msg)
  }

  async #children(dir: FileRef, dirPath: string): Promise<Child[]> {
    const vfs = this.#tree.vfs
    const entries: Array<{ name: Buffer; ref?: FileRef; attr?: Attr }> = []
    let cookie = 0n
    for (;;) {
      this.#req.signal?.throwIfAborted()
      const page = await vfs.readdir(dir, cookie, READDIR_PAGE)
      for (const e of page.entries) {
        cookie = e.cookie
        if ((e.name.length === 1 && e.name[0] === 0x2e) || (e.name.length === 2 && e.name[0] === 0x2e && e.name[1] === 0x2e)) continue
        entries.push({ name: Buffer.from(e.name), ...(e.ref === undefined ? {} : { ref: e.ref }), ...(e.attr === undefined ? {} : { attr: e.attr }) })
      }
      if (page.eof || page.entries.length === 0) break
    }
    entries.sort((a, b) => Buffer.compare(a.name, b.name))
    const out: Child[] = []
    for (let i = 0; i < entries.length; i += LOOKUP_BATCH) {
      const batch = entries.slice(i, i + LOOKUP_BATCH)
      const found = await Promise.all(
        batch.map(async (e) => {
          const path = dirPath === '' ? e.name.toString('utf8') : `${dirPath}/${e.name.toString('utf8')}`
          if (e.ref !== undefined && e.attr !== undefined) return { name: e.name, path, ref: e.ref, attr: e.attr }
          try {
            const r = await vfs.lookup(dir, e.name)
            return { name: e.name, path, ref: r.ref, attr: r.attr }
          } catch (err) {
            // Removed between readdir and lookup: a live tree moves; the backup goes on.
            this.#log('warn', `${path}: vanished while listed (${(err as { code?: string }).code ?? String(err)}), skipped`)
            return null
          }
        }),
      )
      for (const c of found) if (c !== null) out.push(c)
    }
    return out
  }

  /** A name the base did not list, or that named another object there (a rename or a replacement). */
  #isNewName(dirPath: string, c: Child): boolean {
    if (this.#since === null) return true
    return this.#baseIds(dirPath)?.get(c.name.toString('utf8')) !== c.attr.fileid
  }

  /** The base listing of one directory as name -> fileid, built once per directory (the walk visits it once). */
  #baseIds(dirPath: string): Map<string, bigint> | undefined {
    if (this.#baseDir?.path === dirPath) return this.#baseDir.ids
    const entries = this.#base?.get(dirPath)
    const ids = entries === undefined ? undefined : new Map(entries.map((e) => [e.name, e.fileid]))
    this.#baseDir = { path: dirPath, ids }
    return ids
  }

  #isChanged(dirPath: string, c: Child, forceAll: boolean): boolean {
    if (this.#since === null || forceAll || this.#isNewName(dirPath, c)) return true
    return atOrAfter(c.attr.mtime, this.#since) || atOrAfter(c.attr.ctime, this.#since)
  }

  async #emit(path: string, type: TarType, attr: Attr, extra: Partial<FileHistoryEntry>, tarExtra?: Array<[string, Buffer]>): Promise<bigint> {
    return this.#out.begin({
      path: type === 'dir' ? (path === '' ? './' : `${path}/`) : path,
      type,
      mode: attr.mode,
      uid: attr.uid,
      gid: attr.gid,
      size: type === 'file' ? attr.size : 0n,
      atime: attr.atime,
      mtime: attr.mtime,
      ctime: attr.ctime,
      ...(extra.linkTarget !== undefined ? { linkTarget: extra.linkTarget } : {}),
      ...(extra.hardLinkOf !== undefined ? { linkTarget: extra.hardLinkOf } : {}),
      ...(type === 'char' || type === 'block' ? { rdev: { major: attr.rdev.major, minor: attr.rdev.minor } } : {}),
      ...(tarExtra === undefined ? {} : { extra: tarExtra }),
    })
  }

  #history(path: string, attr: Attr, offset: bigint, extra: Partial<FileHistoryEntry>): void {
    const e: FileHistoryEntry = {
      path,
      type: attr.type,
      mode: attr.mode,
      uid: attr.uid,
      gid: attr.gid,
      size: attr.type === 'file' ? attr.size : 0n,
      atime: attr.atime,
      mtime: attr.mtime,
      ctime: attr.ctime,
      fileid: attr.fileid,
      offset,
      ...extra,
    }
    this.#req.onFile?.(e)
  }

  /** One directory: its member with the listing, then its entries in name order. */
  async dir(ref: FileRef, path: string, attr: Attr, forceAll: boolean): Promise<void> {
    const kids = await this.#children(ref, path)
    const plan: Array<{ c: Child; fresh: boolean }> = []
    const dump: DumpdirEntry[] = []
    const listed: Array<{ name: string; fileid: bigint; type: FileType }> = []
    for (const c of kids) {
      listed.push({ name: c.name.toString('utf8'), fileid: c.attr.fileid, type: c.attr.type })
      const excluded = this.#excl.excluded(c.path)
      if (excluded) this.#log('info', `${c.path}: excluded`)
      if (c.attr.type === 'dir') {
        dump.push({ flag: 'D', name: c.name })
        // Decided now, while this directory's base listing is at hand.
        if (!excluded) plan.push({ c, fresh: forceAll || this.#isNewName(path, c) })
        continue
      }
      const copy = !excluded && c.attr.type !== 'socket' && this.#isChanged(path, c, forceAll)
      dump.push({ flag: copy ? 'Y' : 'N', name: c.name })
      if (copy) plan.push({ c, fresh: false })
      else if (c.attr.type === 'socket' && !excluded) this.#log('info', `${c.path}: a socket, not backed up`)
    }
    this.listing.set(path, listed)
    const offset = await this.#emit(path, 'dir', attr, {}, [[DUMPDIR_KEY, encodeDumpdir(dump)]])
    this.dirs++
    this.#history(path, attr, offset, {})
    for (const { c, fresh } of plan) {
      this.#req.signal?.throwIfAborted()
      if (c.attr.type === 'dir') {
        await this.dir(c.ref, c.path, c.attr, fresh)
      } else await this.#object(c)
    }
  }

  async #object(c: Child): Promise<void> {
    const vfs = this.#tree.vfs
    const { attr, path } = c
    if (attr.type !== 'dir' && attr.nlink > 1) {
      const first = this.#linked.get(attr.fileid)
      if (first !== undefined) {
        const offset = await this.#emit(path, 'hardlink', attr, { hardLinkOf: first })
        this.files++
        this.#history(path, attr, offset, { hardLinkOf: first })
        return
      }
      this.#linked.set(attr.fileid, path)
    }
    switch (attr.type) {
      case 'file':
        return this.#file(c)
      case 'symlink': {
        let target: string
        try {
          target = (await vfs.readlink(c.ref)).toString('utf8')
        } catch (err) {
          this.#log('warn', `${path}: symlink vanished while read (${(err as { code?: string }).code ?? String(err)}), skipped`)
          return
        }
        const offset = await this.#emit(path, 'symlink', attr, { linkTarget: target })
        this.files++
        this.#history(path, attr, offset, { linkTarget: target })
        return
      }
      case 'char':
      case 'block':
      case 'fifo': {
        const offset = await this.#emit(path, attr.type, attr, {})
        this.files++
        this.#history(path, attr, offset, {})
        return
      }
      default:
        return
    }
  }

  async #file(c: Child): Promise<void> {
    const vfs = this.#tree.vfs
    const { attr, path } = c
    let regions: Region[] | null
    try {
      regions = await findRegions(vfs, c.ref, attr, this.#req.signal)
    } catch (err) {
      if (this.#req.signal?.aborted === true) throw err
      regions = null // the copy below meets the same fault and records it
    }
    const offset = await this.#out.begin({
      path,
      type: 'file',
      mode: attr.mode,
      uid: attr.uid,
      gid: attr.gid,
      size: attr.size,
      atime: attr.atime,
      mtime: attr.mtime,
      ctime: attr.ctime,
      ...(regions === null ? {} : { sparse: regions }),
    })
    const r = await copyFile(vfs, c.ref, attr.size, regions, this.#out, this.#req.signal)
    let moved = r.short
    if (!moved) {
      try {
        const after = await vfs.getattr(c.ref)
        moved = after.size !== attr.size || !sameTime(after.mtime, attr.mtime)
      } catch {
        moved = true
      }
    }
    if (moved) {
      this.changed.push(path)
      this.#log('warn', `${path}: changed while it was read; its copy may be torn`)
    }
    this.files++
    this.index.push({ path, offset, size: attr.size, sha256: r.sha256, changed: moved })
    this.#history(path, attr, offset, { sha256: r.sha256, ...(moved ? { changedDuringBackup: true } : {}) })
  }
}

/** Writes one backup (see the file comment); `listings` finds the base's listing for rename detection. */
export async function writeBackup(tree: BackupTree, sink: ByteSink, req: BackupRequest, listings: ListingLookup | null): Promise<BackupSummary> {
  const startedAt = wallClock()
  let base: DirListing | null = null
  if (req.base !== null) {
    base = listings === null ? null : await listings(req.base.listingId)
    if (base === null) req.onLog?.('warn', `level ${req.level}: the base's listing ${req.base.listingId} is unknown; renames are found by time only`)
  } else if (req.level > 0) {
    req.onLog?.('info', `level ${req.level}: no backup of a lower level, so this one is full`)
  }
  if (tree.live) req.onLog?.('info', `${tree.name}: read live (no snapshot): files changing meanwhile are noted`)
  const z = req.compress === undefined || req.compress === null ? null : compressingSink(sink, req.compress)
  const out = new TarWriter(z ?? sink)
  const run = new BackupRun(tree, req, out, base)
  const rootAttr = await tree.vfs.getattr(tree.root)
  await run.dir(tree.root, '', rootAttr, req.base === null)
  for (const g of encodeIndex(run.index)) await out.global(g)
  await out.finish()
  await z?.end()
  return {
    level: req.level,
    startedAt,
    files: run.files,
    dirs: run.dirs,
    bytes: out.offset,
    changed: run.changed,
    listingId: randomUUID(),
    listing: run.listing,
  }
}
