import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { GETATTR3args, GETATTR3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { fattr } from '../context.ts'

/** RFC 1813 §3.3.1: no permission needed beyond the handle; the failure arm is void. */
export async function getattr(args: GETATTR3args, ctx: Nfs3Context): Promise<GETATTR3res> {
  const obj = await ctx.target(args.object)
  if (!obj.ok) return { status: obj.status }
  return { status: nfsstat3.NFS3_OK, resok: { obj_attributes: fattr(obj, obj.attr) } }
}
