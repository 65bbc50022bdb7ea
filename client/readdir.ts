/*
 * Directory listing: READDIR and READDIRPLUS paged by cookie until eof
 * (RFC 1813 §3.3.16-17). Cookies are bigint and echoed exactly, with the
 * verifier of the listing they belong to. NFS3ERR_BAD_COOKIE (the directory
 * changed under the listing) restarts it from the beginning once. A cookie
 * asked for twice in one listing is a readdir loop: ELOOP, as Linux says.
 */
import { nfsstat3 } from '../xdr/generated/nfs3.ts'
import { NfsStats } from './attrs.ts'
import { isNfsError, NfsError } from './errors.ts'
import type { WalkContext } from './walk.ts'

export interface DirEntry {
  name: string
  fileid: bigint
}

export interface DirEntryPlus extends DirEntry {
  /** The entry's handle, when the server sent it. */
  fh: Buffer | null
  /** Its attributes, when the server sent them (with a handle). */
  stats: NfsStats | null
}

const ZERO_VERF = Buffer.alloc(8)

function isDots(name: string): boolean {
  return name === '.' || name === '..'
}

/**
 * The cookies one listing has asked for. A server whose cookies lead back to a page already read
 * (a bug, or a hostile server) would have the listing go round for ever, gathering the same entries
 * until memory runs out: Linux stops it with ELOOP ("directory contains a readdir loop"), and so do
 * we. One cookie per page is kept, not one per entry.
 */
class AskedCookies {
  readonly #asked = new Set<bigint>()

  /** Records `cookie` as asked next; throws ELOOP when this listing asked for it before. */
  next(cookie: bigint, procedure: string, path: string): void {
    if (this.#asked.has(cookie)) throw NfsError.client('ELOOP', procedure, path)
    this.#asked.add(cookie)
  }
}

/**
 * A listed name must be one component: not empty, no '/' and no NUL (RFC 1813 §3.2: a filename3 is
 * a single pathname component). A server that sends one otherwise would have a caller that joins
 * names to paths (cp -r to a local directory, rm -r) reach outside the directory listed, and Node's
 * file system calls throw on a NUL. FUSE's kernel side fails such a listing with EIO
 * (fuse_parse_dirfile), and so does the client, for its own callers too.
 */
function checkName(name: Buffer, procedure: string, path: string): void {
  if (name.length === 0 || name.includes(0x2f) || name.includes(0)) throw NfsError.fromStatus(nfsstat3.NFS3ERR_IO, procedure, path)
}

async function restartOnBadCookie<T>(list: () => Promise<T>): Promise<T> {
  try {
    return await list()
  } catch (err) {
    if (!isNfsError(err, 'NFS3ERR_BAD_COOKIE')) throw err
    return await list()
  }
}

/** Every entry of a directory by READDIR, without '.' and '..'. */
export function listDir(ctx: WalkContext, dir: Buffer, count: number, path: string): Promise<DirEntry[]> {
  return restartOnBadCookie(async () => {
    const out: DirEntry[] = []
    let cookie = 0n
    let cookieverf = ZERO_VERF
    const asked = new AskedCookies()
    for (;;) {
      asked.next(cookie, 'READDIR', path)
      const r = await ctx.nfs.call('READDIR', { dir: { data: dir }, cookie, cookieverf, count }, { path })
      for (const e of r.reply.entries) {
        checkName(e.name, 'READDIR', path)
        const name = e.name.toString()
        if (!isDots(name)) out.push({ name, fileid: e.fileid })
        cookie = e.cookie
      }
      cookieverf = Buffer.from(r.cookieverf)
      if (r.reply.eof || r.reply.entries.length === 0) return out
    }
  })
}

/**
 * Every entry with handle and attributes by READDIRPLUS (an NfsError
 * NFS3ERR_NOTSUPP when the server has none: the caller falls back). The
 * handles also prime the name cache, as Linux's nfs_prime_dcache does.
 */
export function listDirPlus(ctx: WalkContext, dir: Buffer, dircount: number, maxcount: number, path: string): Promise<DirEntryPlus[]> {
  return restartOnBadCookie(async () => {
    const out: DirEntryPlus[] = []
    let cookie = 0n
    let cookieverf = ZERO_VERF
    const asked = new AskedCookies()
    for (;;) {
      asked.next(cookie, 'READDIRPLUS', path)
      const r = await ctx.nfs.call('READDIRPLUS', { dir: { data: dir }, cookie, cookieverf, dircount, maxcount }, { path })
      for (const e of r.reply.entries) {
        checkName(e.name, 'READDIRPLUS', path)
        cookie = e.cookie
        const name = e.name.toString()
        if (isDots(name)) continue
        const fh = e.name_handle === null ? null : Buffer.from(e.name_handle.data)
        if (fh !== null) ctx.names.addPositive(dir, name, fh)
        out.push({ name, fileid: e.fileid, fh, stats: fh !== null && e.name_attributes !== null ? new NfsStats(fh, e.name_attributes) : null })
      }
      cookieverf = Buffer.from(r.cookieverf)
      if (r.reply.eof || r.reply.entries.length === 0) return out
    }
  })
}

export const NOTSUPP = nfsstat3.NFS3ERR_NOTSUPP
