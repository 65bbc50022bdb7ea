/*
 * Permission to open, asked of the server as Linux's NFS client does
 * (fs/nfs/dir.c nfs_may_open, nfs_do_access): NFSv3 has no OPEN, and the
 * data path's caches are shared by every identity using the mount, so an
 * open must not hand a caller blocks another one read or wrote unless the
 * server would let this caller open the file so. ACCESS asks every bit at
 * once and its answer is kept per identity in the attribute cache; its
 * reply's attributes are the open's close-to-open revalidation, so an open
 * with nothing cached costs the one call it always did (ACCESS instead of
 * GETATTR), and one with an answer cached still revalidates first, since
 * a changed mode or owner drops the answer.
 */
import { ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND, ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ, nfsstat3 } from '../xdr/generated/nfs3.ts'
import type { fattr3 } from '../xdr/generated/nfs3.ts'
import type { AttrCache } from './cache/attr-cache.ts'
import { NfsError } from './errors.ts'
import { identityKey } from './identity.ts'
import type { Nfs3 } from './nfs3.ts'

/** Every ACCESS bit (RFC 1813 §3.3.4): one answer serves later questions (as Linux's nfs_access_calc_mask asks). */
export const ACCESS_ALL = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE | ACCESS3_EXECUTE

export interface AccessContext {
  readonly nfs: Nfs3
  readonly attrs: AttrCache
  getattr(fh: Buffer, opts?: { revalidate?: boolean }): Promise<fattr3>
}

/** The bits of want the server grants the context's identity on fh: the access cache, else ACCESS. */
export async function accessGranted(ctx: AccessContext, fh: Buffer, want: number, path?: string): Promise<number> {
  const who = identityKey(ctx.nfs.cred)
  const known = ctx.attrs.accessOf(fh, who, want)
  if (known !== undefined) return known
  const r = await ctx.nfs.call('ACCESS', { object: { data: fh }, access: ACCESS_ALL }, path === undefined ? {} : { path })
  ctx.attrs.noteAccess(fh, who, ACCESS_ALL, r.access)
  return r.access & want
}

/**
 * Before opening fh for want (ACCESS bits): revalidated attributes
 * (close-to-open) and the server's permission, else NFS3ERR_ACCES
 * (EACCES). Returns the attributes.
 */
export async function mayOpen(ctx: AccessContext, fh: Buffer, want: number, path?: string): Promise<fattr3> {
  const who = identityKey(ctx.nfs.cred)
  let known: number | undefined
  if (ctx.attrs.accessOf(fh, who, want) !== undefined) {
    await ctx.getattr(fh, { revalidate: true })
    known = ctx.attrs.accessOf(fh, who, want)
  }
  if (known === undefined) {
    const r = await ctx.nfs.call('ACCESS', { object: { data: fh }, access: ACCESS_ALL }, path === undefined ? {} : { path })
    ctx.attrs.noteAccess(fh, who, ACCESS_ALL, r.access)
    known = r.access & want
    if (r.obj_attributes === null) await ctx.getattr(fh, { revalidate: true })
  }
  if (known !== want) throw NfsError.fromStatus(nfsstat3.NFS3ERR_ACCES, 'ACCESS', path)
  return ctx.attrs.peek(fh) ?? (await ctx.getattr(fh, { revalidate: true }))
}
