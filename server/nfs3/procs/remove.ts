import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { REMOVE3args, REMOVE3res } from '../../../xdr/generated/nfs3.ts'
import type { ErrStat, Nfs3Context } from '../context.ts'
import { isDot, isDotDot, nameStatus } from '../names.ts'
import { unlinkEntry } from '../unlink.ts'

/** `.` and `..` are never removable names: ACCES, as knfsd's nfsd_unlink (isdotent). */
function removeName(name: Buffer): ErrStat | null {
  return nameStatus(name) ?? (isDot(name) || isDotDot(name) ? nfsstat3.NFS3ERR_ACCES : null)
}

/** RFC 1813 §3.3.12: a non-directory; a directory is ISDIR (unlink(2)). */
export async function remove(args: REMOVE3args, ctx: Nfs3Context): Promise<REMOVE3res> {
  const r = await unlinkEntry(ctx, args.object, removeName, 'remove')
  return r.status === nfsstat3.NFS3_OK ? { status: r.status, resok: { dir_wcc: r.dir_wcc } } : { status: r.status, resfail: { dir_wcc: r.dir_wcc } }
}
