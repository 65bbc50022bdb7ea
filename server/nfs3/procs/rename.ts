import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { RENAME3args, RENAME3res, wcc_data } from '../../../xdr/generated/nfs3.ts'
import type { Attr } from '../../../vfs/types.ts'
import { wccData } from '../attrs.ts'
import type { ErrStat, Nfs3Context, Target } from '../context.ts'
import { failWcc, fsidOf, sameExport, unchangedWcc } from '../context.ts'
import { commitChange } from '../durable.ts'
import { isDot, isDotDot, nameStatus } from '../names.ts'
import { MAY_EXEC, MAY_WRITE, permits, stickyAllows } from '../permission.ts'

const NONE: wcc_data = { before: null, after: null }

function fail(status: ErrStat, fromdir_wcc: wcc_data, todir_wcc: wcc_data): RENAME3res {
  return { status, resfail: { fromdir_wcc, todir_wcc } }
}

/** P14: `.` or `..` as either name is INVAL; otherwise the usual name rules (P15). */
function renameName(name: Buffer): ErrStat | null {
  return nameStatus(name) ?? (isDot(name) || isDotDot(name) ? nfsstat3.NFS3ERR_INVAL : null)
}

/** The entry's attributes, null if there is none, or the status of another failure. */
async function entryAttr(ctx: Nfs3Context, dir: Target, name: Buffer): Promise<Attr | null | ErrStat> {
  try {
    return (await dir.vfs.lookup(dir.ref, name)).attr
  } catch (err) {
    const status = ctx.status(err)
    return status === nfsstat3.NFS3ERR_NOENT ? null : status
  }
}

/**
 * The permission rules of rename(2) as knfsd applies them: write and search
 * on both directories (ACCES); the sticky rule for the source and for a
 * target being replaced (PERM); moving a directory to a new parent rewrites
 * its `..`, so it needs write permission on the directory moved (ACCES).
 */
async function renameDenied(ctx: Nfs3Context, from: Target, to: Target, args: RENAME3args): Promise<ErrStat | null> {
  const user = from.user
  if (!permits(user, from.attr, MAY_WRITE | MAY_EXEC) || !permits(user, to.attr, MAY_WRITE | MAY_EXEC)) return nfsstat3.NFS3ERR_ACCES
  const src = await entryAttr(ctx, from, args.from.name)
  if (src === null) return nfsstat3.NFS3ERR_NOENT
  if (typeof src === 'number') return src
  if (!stickyAllows(user, from.attr, src)) return nfsstat3.NFS3ERR_PERM
  const dst = await entryAttr(ctx, to, args.to.name)
  if (typeof dst === 'number') return dst
  if (dst !== null && !stickyAllows(user, to.attr, dst)) return nfsstat3.NFS3ERR_PERM
  if (src.type === 'dir' && from.attr.fileid !== to.attr.fileid && !permits(user, src, MAY_WRITE)) return nfsstat3.NFS3ERR_ACCES
  return null
}

/** RFC 1813 §3.3.14 and P14: atomic; both replies carry both directories' wcc_data. */
export async function rename(args: RENAME3args, ctx: Nfs3Context): Promise<RENAME3res> {
  const from = await ctx.target(args.from.dir)
  const to = await ctx.target(args.to.dir)
  const fromWcc = from.ok ? unchangedWcc(from, from.attr) : NONE
  const toWcc = to.ok ? unchangedWcc(to, to.attr) : NONE
  if (!from.ok) return fail(from.status, fromWcc, toWcc)
  if (!to.ok) return fail(to.status, fromWcc, toWcc)
  // Both directories must be on one filesystem (fsid): another export is XDEV.
  if (!sameExport(from, to)) return fail(nfsstat3.NFS3ERR_XDEV, fromWcc, toWcc)
  if (from.attr.type !== 'dir' || to.attr.type !== 'dir') return fail(nfsstat3.NFS3ERR_NOTDIR, fromWcc, toWcc)
  if (from.readOnly || to.readOnly) return fail(nfsstat3.NFS3ERR_ROFS, fromWcc, toWcc)
  const bad = renameName(args.from.name) ?? renameName(args.to.name)
  if (bad !== null) return fail(bad, fromWcc, toWcc)
  const denied = await renameDenied(ctx, from, to, args)
  if (denied !== null) return fail(denied, fromWcc, toWcc)
  try {
    const r = await from.vfs.rename(from.ref, args.from.name, to.ref, args.to.name, to.user)
    const fsid = fsidOf(from)
    const fromdir_wcc = wccData(r.from.before, r.from.after, fsid)
    const todir_wcc = wccData(r.to.before, r.to.after, fsid)
    // Both directories (knfsd commits both); the moved object's `..` and a replaced object ride along.
    const unsynced = await commitChange(ctx, from, [from.ref, to.ref])
    if (unsynced !== null) return fail(unsynced, fromdir_wcc, todir_wcc)
    return { status: nfsstat3.NFS3_OK, resok: { fromdir_wcc, todir_wcc } }
  } catch (err) {
    return fail(ctx.status(err), await failWcc(from), await failWcc(to))
  }
}
