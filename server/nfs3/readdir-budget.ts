/*
 * The byte accounting shared by READDIR and READDIRPLUS (RFC 1813 §3.3.16,
 * §3.3.17; P2–P4): `count` / `maxcount` bound the WHOLE encoded reply, so we
 * count every XDR word — the status, post_op_attr, the cookie verifier, each
 * entry with its "value follows" bool, the final FALSE and eof — and stop
 * exactly when the next entry would not fit.
 */
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import type { fattr3, nfs_fh3 } from '../../xdr/generated/nfs3.ts'
import type { DirEntry, FileRef, Vfs } from '../../vfs/types.ts'
import type { Nfs3Context, Target } from './context.ts'
import { fattr } from './context.ts'
import { MAY_READ, permits } from './permission.ts'

export function pad4(n: number): number {
  return (n + 3) & ~3
}

/** post_op_attr: the bool, then an 84-byte fattr3 if present. */
export function postOpAttrSize(present: boolean): number {
  return present ? 4 + 84 : 4
}

/** post_op_fh3: the bool, then length + bytes + padding if present (a handle of `fhLength` bytes, -1: none). */
export function postOpFhSize(fhLength: number): number {
  return fhLength < 0 ? 4 : 4 + 4 + pad4(fhLength)
}

/** One entry3 in the list: value-follows bool, fileid, name (length + padded bytes), cookie. */
export function entry3Size(nameLength: number): number {
  return 4 + 8 + 4 + pad4(nameLength) + 8
}

/** Everything in a READDIR(PLUS) reply but the entries: status, dir_attributes, cookieverf, final FALSE, eof. */
export function replyOverhead(dirAttributes: boolean): number {
  return 4 + postOpAttrSize(dirAttributes) + 8 + 4 + 4
}

/**
 * A zero verifier, never checked (P4; ANCHORS §3 row 4): our cookies stay valid
 * while the directory changes, so a client is never trapped in a BAD_COOKIE loop.
 */
export const ZERO_COOKIEVERF: Buffer = Buffer.alloc(8)

/** Page sizes asked of the vfs: enough for the budget, never unbounded. */
const MAX_PAGE = 4096

export interface Budget {
  /** Bytes left for entries in the reply. */
  bytes: number
  /** Directory-information bytes left (READDIRPLUS dircount); Infinity when unbounded. */
  dirBytes: number
  /** The smallest an entry can cost, to size vfs pages. */
  minEntry: number
}

/**
 * What a listing does with the entries of each page: `prepare` fetches what
 * they need (READDIRPLUS: attributes and objects the page did not carry, all
 * at once), `size` says what entry `i` of the page would cost in the reply,
 * and `write` puts it there: called right after `size` of the same entry
 * when it fits (so what `size` worked out, the handle, may be kept for it),
 * in order, never for an entry after one that did not fit.
 */
export interface EntrySink {
  prepare(page: readonly DirEntry[]): void | Promise<void>
  size(e: DirEntry, i: number): number
  write(e: DirEntry, i: number): void
}

/**
 * Walk the directory after `cookie`, writing entries while they fit. The
 * first entry is bound only by `bytes` (dircount is a softer limit, P3);
 * an entry's directory information is its entry3 (what READDIR would send).
 * Entries read past the last that fits are dropped: their cookies remain
 * valid, so the next call resumes exactly there.
 */
export async function collect(vfs: Vfs, dir: FileRef, cookie: bigint, budget: Budget, sink: EntrySink): Promise<{ count: number; eof: boolean }> {
  let count = 0
  let { bytes, dirBytes } = budget
  let cursor = cookie
  for (;;) {
    const want = Math.min(MAX_PAGE, Math.max(1, Math.floor(bytes / budget.minEntry) + 1))
    const page = await vfs.readdir(dir, cursor, want)
    const ready = sink.prepare(page.entries)
    if (ready !== undefined) await ready
    for (let i = 0; i < page.entries.length; i++) {
      const e = page.entries[i] as DirEntry
      const size = sink.size(e, i)
      const dirSize = entry3Size(e.name.length)
      if (size > bytes || (count > 0 && dirSize > dirBytes)) return { count, eof: false }
      sink.write(e, i)
      count++
      bytes -= size
      dirBytes -= dirSize
      cursor = e.cookie
    }
    // An empty page that is not the end would loop forever: give the client what we have.
    if (page.eof || page.entries.length === 0) return { count, eof: page.eof }
  }
}

/** The checks READDIR and READDIRPLUS share: a directory (NOTDIR), readable by the caller (ACCES). */
export function readdirDenied(dir: Target): Exclude<nfsstat3, 0> | null {
  if (dir.attr.type !== 'dir') return nfsstat3.NFS3ERR_NOTDIR
  // knfsd opens the directory with NFSD_MAY_READ, without the owner override it gives regular files.
  if (!permits(dir.user, dir.attr, MAY_READ)) return nfsstat3.NFS3ERR_ACCES
  return null
}

export type Listing =
  | { ok: true; dir: Target; dirAttributes: fattr3; bytes: number }
  | { ok: false; status: Exclude<nfsstat3, 0>; dirAttributes: fattr3 | null }

/**
 * The start READDIR and READDIRPLUS share: resolve the directory, check it
 * may be listed, and work out the bytes left for entries out of the reply's
 * `count` (READDIR) or `maxcount` (READDIRPLUS): TOOSMALL when not even the
 * fixed part fits.
 */
export async function openListing(fh: nfs_fh3, count: number, ctx: Nfs3Context): Promise<Listing> {
  const dir = await ctx.target(fh)
  if (!dir.ok) return { ok: false, status: dir.status, dirAttributes: null }
  const dirAttributes = fattr(dir, dir.attr)
  const denied = readdirDenied(dir)
  if (denied !== null) return { ok: false, status: denied, dirAttributes }
  const bytes = Math.min(count, ctx.limits.maxReaddirCount) - replyOverhead(true)
  if (bytes < 0) return { ok: false, status: nfsstat3.NFS3ERR_TOOSMALL, dirAttributes }
  return { ok: true, dir, dirAttributes, bytes }
}
