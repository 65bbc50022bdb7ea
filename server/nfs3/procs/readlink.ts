import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { READLINK3args, READLINK3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { fattr, postOpOf } from '../context.ts'

/** RFC 1813 §3.3.5: no permission check (a symlink's mode means nothing); a non-symlink is INVAL. */
export async function readlink(args: READLINK3args, ctx: Nfs3Context): Promise<READLINK3res> {
  const obj = await ctx.target(args.symlink)
  if (!obj.ok) return { status: obj.status, resfail: { symlink_attributes: null } }
  if (obj.attr.type !== 'symlink') return { status: nfsstat3.NFS3ERR_INVAL, resfail: { symlink_attributes: fattr(obj, obj.attr) } }
  try {
    const data = await obj.vfs.readlink(obj.ref)
    return { status: nfsstat3.NFS3_OK, resok: { symlink_attributes: fattr(obj, obj.attr), data } }
  } catch (err) {
    return { status: ctx.status(err), resfail: { symlink_attributes: await postOpOf(obj) } }
  }
}
