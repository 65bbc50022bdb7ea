import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { FSSTAT3args, FSSTAT3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { fattr, postOpOf } from '../context.ts'

/** RFC 1813 §3.3.18 and P25: invarsec 0, an ordinary read-write filesystem. */
export async function fsstat(args: FSSTAT3args, ctx: Nfs3Context): Promise<FSSTAT3res> {
  const obj = await ctx.target(args.fsroot)
  if (!obj.ok) return { status: obj.status, resfail: { obj_attributes: null } }
  try {
    const s = await obj.vfs.fsstat(obj.ref)
    return {
      status: nfsstat3.NFS3_OK,
      resok: {
        obj_attributes: fattr(obj, obj.attr),
        tbytes: s.totalBytes,
        fbytes: s.freeBytes,
        abytes: s.availBytes,
        tfiles: s.totalFiles,
        ffiles: s.freeFiles,
        afiles: s.availFiles,
        invarsec: 0,
      },
    }
  } catch (err) {
    return { status: ctx.status(err), resfail: { obj_attributes: await postOpOf(obj) } }
  }
}
