import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { COMMIT3args, COMMIT3res } from '../../../xdr/generated/nfs3.ts'
import { wccData } from '../attrs.ts'
import type { Nfs3Context } from '../context.ts'
import { failWcc, fsidOf, unchangedWcc } from '../context.ts'
import { mayWrite } from '../permission.ts'

/**
 * RFC 1813 §3.3.21 and P11. A read-only export has nothing unstable to flush,
 * so COMMIT there succeeds as a no-op flush. A failed flush may have lost
 * unstable data: the write verifier changes, so clients resend (ANCHORS row 16).
 */
export async function commit(args: COMMIT3args, ctx: Nfs3Context): Promise<COMMIT3res> {
  const file = await ctx.target(args.file)
  if (!file.ok) return { status: file.status, resfail: { file_wcc: { before: null, after: null } } }
  const unchanged = unchangedWcc(file, file.attr)
  if (file.attr.type === 'dir') return { status: nfsstat3.NFS3ERR_ISDIR, resfail: { file_wcc: unchanged } }
  if (file.attr.type !== 'file') return { status: nfsstat3.NFS3ERR_INVAL, resfail: { file_wcc: unchanged } }
  // knfsd opens the file for writing to commit it (NFSD_MAY_WRITE, the owner overriding).
  if (!mayWrite(file.user, file.attr)) return { status: nfsstat3.NFS3ERR_ACCES, resfail: { file_wcc: unchanged } }
  // An async export acknowledges without flushing (exports(5): replies before stable storage), as for its WRITEs.
  if (!file.sync) return { status: nfsstat3.NFS3_OK, resok: { file_wcc: unchanged, verf: ctx.host.writeVerifier() } }
  try {
    const r = await file.vfs.commit(file.ref, args.offset, args.count)
    return { status: nfsstat3.NFS3_OK, resok: { file_wcc: wccData(r.before, r.after, fsidOf(file)), verf: ctx.host.writeVerifier() } }
  } catch (err) {
    const status = ctx.status(err)
    if (status !== nfsstat3.NFS3ERR_STALE) ctx.host.bumpWriteVerifier()
    return { status, resfail: { file_wcc: await failWcc(file) } }
  }
}
