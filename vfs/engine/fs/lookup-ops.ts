/*
 * The operations that only look: GETATTR, LOOKUP, READDIR(PLUS), FSSTAT and PATHCONF, each under
 * the shared side of the engine's lock, over cached inode slots (EngineCore.slotOf).
 */
import { VfsError } from '../../errors.ts'
import { checkName, isDot, isDotDot, NAME_MAX } from '../../names.ts'
import type { Attr, DirEntry, DirPage, FileRef, FsStat, PathConf } from '../../types.ts'
import { S_IFDIR, S_IFMT } from '../format/inode.ts'
import type { InodeSlot } from '../inode/inode-table.ts'
import { LINK_MAX } from './dir-links.ts'
import { ROOT_INO } from './engine-core.ts'
import type { EngineCore } from './engine-core.ts'
import type { ListedEntry } from './parts.ts'

export async function getattr(c: EngineCore, f: FileRef): Promise<Attr> {
  // The hit path: a cached live inode, answered in this turn (EngineCore.readableNow says why that
  // needs no lock); anything else (not cached, stale, a change running) the locked way, below.
  if (c.readableNow) {
    const got = c.cachedView(f)
    if (got !== undefined) return c.viewAttr(got.ino, got.slot)
  }
  return c.read(async () => {
    const { ino, slot } = await c.getSlot(f)
    return c.viewAttr(ino, slot)
  })
}

/**
 * LOOKUP's hit path, in this turn without the lock (as getattr's): the directory and the child
 * cached, the name in the name cache (fs/name-cache.ts). undefined: go the locked way, which also
 * says why a name or handle is refused.
 */
function lookupNow(c: EngineCore, dir: FileRef, name: Buffer): { ref: FileRef; attr: Attr } | undefined {
  if (!c.readableNow || c.p.dirs.findCached === undefined) return undefined
  const d = c.cachedView(dir)
  if (d === undefined || (d.slot.inode.mode & S_IFMT) !== S_IFDIR) return undefined
  const hit = c.p.dirs.findCached(d.ino, name)
  if (hit === undefined) return undefined
  const slot = c.liveSlot(hit.ino)
  return slot === undefined ? undefined : { ref: c.viewRef(hit.ino, slot), attr: c.viewAttr(hit.ino, slot) }
}

export async function lookup(c: EngineCore, dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
  const now = lookupNow(c, dir, name)
  if (now !== undefined) return now
  return c.read(async () => {
    const d = await c.getDir(dir, true)
    if (isDot(name)) {
      const self = await c.slotOf(d.ino)
      return { ref: c.viewRef(d.ino, self), attr: c.viewAttr(d.ino, self) }
    }
    if (!isDotDot(name)) checkName(name)
    let ino: number
    if (isDotDot(name) && d.ino === ROOT_INO) ino = ROOT_INO
    else {
      const hit = await c.p.dirs.find(d.ino, d.inode, name)
      if (hit === undefined) throw new VfsError('ENOENT')
      ino = hit.ino
    }
    const slot = await c.slotOf(ino)
    return { ref: c.viewRef(ino, slot), attr: c.viewAttr(ino, slot) }
  })
}

export async function readdir(c: EngineCore, dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
  return c.read(async () => {
    const d = await c.getDir(dir, true)
    const page = await c.p.dirs.list(d.ino, d.inode, cookie, max)
    const list = page.entries
    const entries: DirEntry[] = []
    // Each entry's handle and attributes from its inode, under this one read lock: READDIRPLUS then
    // needs no lookup of each name (an htree search and a second lock) to find them. Cached inodes
    // (the usual case) in this loop, one cache lookup each and no await.
    let i = 0
    for (; i < list.length; i++) {
      const e = list[i] as ListedEntry
      const slot = c.p.inodes.cachedSlot(e.ino)
      if (slot === undefined) break
      entries.push(entryOf(c, e, slot.live ? slot : undefined))
    }
    if (i < list.length) {
      // From the first inode not cached on (a directory listed after a restart): the inode table
      // blocks of the rest of the page read at once, then each inode from them.
      await c.p.inodes.prefetch?.(list.slice(i).map((e) => e.ino))
      for (; i < list.length; i++) {
        const e = list[i] as ListedEntry
        entries.push(entryOf(c, e, c.liveSlot(e.ino) ?? await c.slotOf(e.ino).catch(() => undefined)))
      }
    }
    return { entries, eof: page.eof }
  })
}

/** A listed entry with its inode's handle and attributes (the slot's own, shared with GETATTR and LOOKUP); none when gone. */
function entryOf(c: EngineCore, e: ListedEntry, slot: InodeSlot | undefined): DirEntry {
  // One literal with every field: an entry grown field by field changes shape twice.
  if (slot === undefined) return { name: e.name, fileid: BigInt(e.ino), cookie: e.cookie }
  const attr = c.viewAttr(e.ino, slot)
  return { name: e.name, fileid: attr.fileid, cookie: e.cookie, ref: c.viewRef(e.ino, slot), attr }
}

export async function fsstat(c: EngineCore, f: FileRef): Promise<FsStat> {
  return c.read(async () => {
    await c.get(f, true)
    const s = await c.p.statfs()
    const bs = BigInt(c.p.blockSize)
    const free = BigInt(s.freeBlocks)
    const avail = free > BigInt(s.reservedBlocks) ? free - BigInt(s.reservedBlocks) : 0n
    return {
      totalBytes: BigInt(s.blocks) * bs, freeBytes: free * bs, availBytes: avail * bs,
      totalFiles: BigInt(s.inodes), freeFiles: BigInt(s.freeInodes), availFiles: BigInt(s.freeInodes),
    }
  })
}

export async function pathconf(c: EngineCore, f: FileRef): Promise<PathConf> {
  await getattr(c, f)
  return { linkMax: LINK_MAX, nameMax: NAME_MAX, noTrunc: true, chownRestricted: true, caseInsensitive: false, casePreserving: true }
}
