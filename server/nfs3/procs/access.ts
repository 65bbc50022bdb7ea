import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { ACCESS3args, ACCESS3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { fattr } from '../context.ts'
import { accessBits } from '../permission.ts'

/** RFC 1813 §3.3.4: what these credentials may do, for the bits asked only (P22). */
export async function access(args: ACCESS3args, ctx: Nfs3Context): Promise<ACCESS3res> {
  const obj = await ctx.target(args.object)
  if (!obj.ok) return { status: obj.status, resfail: { obj_attributes: null } }
  return {
    status: nfsstat3.NFS3_OK,
    resok: { obj_attributes: fattr(obj, obj.attr), access: accessBits(obj.user, obj.attr, args.access, obj.readOnly) },
  }
}
