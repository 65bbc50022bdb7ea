/*
 * READDIR of the replicating layer: the backend's whole directory read into
 * a listing in cookie order (dir-cookies.ts), and pages of it with every
 * fileid and ref a vid. Objects met unbound get a vid here; the caller
 * makes those binds durable before it replies.
 */
import { VfsError } from '../errors.ts'
import type { DirEntry, DirPage, FileRef, Vfs } from '../types.ts'
import { compareEntries, DOT_COOKIE, DOTDOT_COOKIE, nameCookie, pageOf } from './dir-cookies.ts'
import type { ListedEntry, Listing } from './dir-cookies.ts'
import { DOT, DOTDOT, isGone } from './translate.ts'

/** Entries asked of the backend per call while reading a whole directory. */
const BACKEND_PAGE = 1024
/** A backend that pages forever (or a directory past this) is an error, not a hang. */
const MAX_ENTRIES = 10_000_000

export async function readListing(backend: Vfs, dir: FileRef): Promise<Listing> {
  const out: ListedEntry[] = []
  let cookie = 0n
  for (;;) {
    const page = await backend.readdir(dir, cookie, BACKEND_PAGE)
    for (const e of page.entries) {
      const c = e.name.equals(DOT) ? DOT_COOKIE : e.name.equals(DOTDOT) ? DOTDOT_COOKIE : nameCookie(e.name)
      const ref = e.ref === undefined ? undefined : { id: e.ref.id, gen: e.ref.gen }
      // Our own copy: a backend may lend its buffer.
      out.push({ name: Buffer.from(e.name), cookie: c, localId: e.fileid, localRef: ref })
    }
    const last = page.entries.at(-1)
    if (page.eof) break
    if (last === undefined || out.length > MAX_ENTRIES) throw new VfsError('EIO', 'replica: the backend READDIR does not advance')
    cookie = last.cookie
  }
  return out.sort(compareEntries)
}

export interface VidSource {
  /** The vid of a local object, binding a fresh one when it has none. */
  vidFor(local: FileRef): FileRef
  /** The bound vid of a local id, when the backend gave no ref. */
  vidOfId(localId: bigint): FileRef | undefined
}

/** One page of `list` after `cookie`, translated; entries that vanished since the listing was read are left out. */
export async function pageFor(backend: Vfs, localDir: FileRef, dir: FileRef, list: Listing, cookie: bigint, max: number, ids: VidSource): Promise<DirPage> {
  const page = pageOf(list, cookie, max)
  const entries: DirEntry[] = []
  for (const e of page.entries) {
    if (e.cookie === DOT_COOKIE) {
      entries.push({ name: e.name, fileid: dir.id, cookie: e.cookie, ref: dir })
      continue
    }
    let vid = e.localRef === undefined ? ids.vidOfId(e.localId) : ids.vidFor(e.localRef)
    if (vid === undefined) {
      try {
        vid = ids.vidFor((await backend.lookup(localDir, e.name)).ref)
      } catch (err) {
        // Removed since the listing was read, or a mount point not crossed (EACCES): not listed.
        if (isGone(err) || (err instanceof VfsError && err.code === 'EACCES')) continue
        throw err
      }
    }
    entries.push({ name: e.name, fileid: vid.id, cookie: e.cookie, ref: vid })
  }
  return { entries, eof: page.eof }
}
