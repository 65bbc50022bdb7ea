import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { SETATTR3args, SETATTR3res, wcc_data } from '../../../xdr/generated/nfs3.ts'
import { nfstime, setAttrOf, wccData } from '../attrs.ts'
import type { ErrStat, Nfs3Context } from '../context.ts'
import { failWcc, fsidOf, unchangedWcc } from '../context.ts'
import { commitChange } from '../durable.ts'
import { checkSetAttr } from '../permission.ts'

function fail(status: ErrStat, obj_wcc: wcc_data): SETATTR3res {
  return { status, resfail: { obj_wcc } }
}

/** RFC 1813 §3.3.2. */
export async function setattr(args: SETATTR3args, ctx: Nfs3Context): Promise<SETATTR3res> {
  const obj = await ctx.target(args.object)
  if (!obj.ok) return fail(obj.status, { before: null, after: null })
  const unchanged = unchangedWcc(obj, obj.attr)
  if (obj.readOnly) return fail(nfsstat3.NFS3ERR_ROFS, unchanged)

  // P9: the guard compares seconds and nanoseconds with the current ctime, at the
  // precision GETATTR reports; a mismatch changes nothing.
  if (args.guard !== null) {
    const ctime = nfstime(obj.attr.ctime)
    if (ctime.seconds !== args.guard.seconds || ctime.nseconds !== args.guard.nseconds) {
      return fail(nfsstat3.NFS3ERR_NOT_SYNC, unchanged)
    }
  }

  const check = checkSetAttr(obj.user, obj.attr, setAttrOf(args.new_attributes))
  if (!check.ok) return fail(check.status === 'PERM' ? nfsstat3.NFS3ERR_PERM : nfsstat3.NFS3ERR_ACCES, unchanged)
  // Nothing to change (every field DONT_CHANGE): succeed without touching ctime, as knfsd does.
  if (Object.keys(check.set).length === 0) {
    return { status: nfsstat3.NFS3_OK, resok: { obj_wcc: wccData(obj.attr, obj.attr, fsidOf(obj)) } }
  }
  try {
    const { before, after } = await obj.vfs.setattr(obj.ref, check.set)
    const obj_wcc = wccData(before, after, fsidOf(obj))
    // RFC 1813 §1.6 leaves SETATTR out of its synchronous list, but knfsd commits it (a size or
    // mode change would otherwise last only until the file's next COMMIT): so do we. What it cost
    // cp -a and tar x through the mount was within the noise of a busy machine (bench/README.md,
    // session 41): the file's data is committed at close already, so this is one journal commit.
    const unsynced = await commitChange(ctx, obj, [obj.ref])
    if (unsynced !== null) return fail(unsynced, obj_wcc)
    return { status: nfsstat3.NFS3_OK, resok: { obj_wcc } }
  } catch (err) {
    return fail(ctx.status(err), await failWcc(obj))
  }
}
