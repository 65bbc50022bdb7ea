import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { PATHCONF3args, PATHCONF3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { fattr, postOpOf } from '../context.ts'

/** RFC 1813 §3.3.20 and P25: the backend's truth. */
export async function pathconf(args: PATHCONF3args, ctx: Nfs3Context): Promise<PATHCONF3res> {
  const obj = await ctx.target(args.object)
  if (!obj.ok) return { status: obj.status, resfail: { obj_attributes: null } }
  try {
    const p = await obj.vfs.pathconf(obj.ref)
    return {
      status: nfsstat3.NFS3_OK,
      resok: {
        obj_attributes: fattr(obj, obj.attr),
        linkmax: p.linkMax,
        name_max: p.nameMax,
        no_trunc: p.noTrunc,
        chown_restricted: p.chownRestricted,
        case_insensitive: p.caseInsensitive,
        case_preserving: p.casePreserving,
      },
    }
  } catch (err) {
    return { status: ctx.status(err), resfail: { obj_attributes: await postOpOf(obj) } }
  }
}
