import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { LOOKUP3args, LOOKUP3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { fattr, handleOf, postOpOf } from '../context.ts'
import { nameStatus } from '../names.ts'
import { MAY_EXEC, permits } from '../permission.ts'

/**
 * RFC 1813 §3.3.3. Never follows symlinks and never leaves the export: the
 * vfs root is the export root, and its `..` is itself (P15).
 */
export async function lookup(args: LOOKUP3args, ctx: Nfs3Context): Promise<LOOKUP3res> {
  const dir = await ctx.target(args.what.dir)
  if (!dir.ok) return { status: dir.status, resfail: { dir_attributes: null } }
  const dirAttributes = fattr(dir, dir.attr)
  if (dir.attr.type !== 'dir') return { status: nfsstat3.NFS3ERR_NOTDIR, resfail: { dir_attributes: dirAttributes } }
  const bad = nameStatus(args.what.name)
  if (bad !== null) return { status: bad, resfail: { dir_attributes: dirAttributes } }
  // Searching a directory needs execute permission on it (knfsd: NFSD_MAY_EXEC).
  if (!permits(dir.user, dir.attr, MAY_EXEC)) return { status: nfsstat3.NFS3ERR_ACCES, resfail: { dir_attributes: dirAttributes } }
  try {
    const found = await dir.vfs.lookup(dir.ref, args.what.name)
    return {
      status: nfsstat3.NFS3_OK,
      resok: { object: handleOf(ctx, dir, found.ref), obj_attributes: fattr(dir, found.attr), dir_attributes: dirAttributes },
    }
  } catch (err) {
    return { status: ctx.status(err), resfail: { dir_attributes: await postOpOf(dir) } }
  }
}
