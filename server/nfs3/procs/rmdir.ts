import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { RMDIR3args, RMDIR3res } from '../../../xdr/generated/nfs3.ts'
import type { ErrStat, Nfs3Context } from '../context.ts'
import { isDot, isDotDot, nameStatus } from '../names.ts'
import { unlinkEntry } from '../unlink.ts'

/** RFC 1813 §3.3.13 IMPLEMENTATION: `.` is INVAL and `..` is EXIST. */
function rmdirName(name: Buffer): ErrStat | null {
  const bad = nameStatus(name)
  if (bad !== null) return bad
  if (isDot(name)) return nfsstat3.NFS3ERR_INVAL
  if (isDotDot(name)) return nfsstat3.NFS3ERR_EXIST
  return null
}

/** RFC 1813 §3.3.13: an empty directory; a non-directory is NOTDIR, a non-empty one NOTEMPTY. */
export async function rmdir(args: RMDIR3args, ctx: Nfs3Context): Promise<RMDIR3res> {
  const r = await unlinkEntry(ctx, args.object, rmdirName, 'rmdir')
  return r.status === nfsstat3.NFS3_OK ? { status: r.status, resok: { dir_wcc: r.dir_wcc } } : { status: r.status, resfail: { dir_wcc: r.dir_wcc } }
}
