import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { READ3args, READ3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { fattr, postOpOf } from '../context.ts'
import { mayRead } from '../permission.ts'
import { releaseWhenSent } from '../../rpc/sent.ts'

/** RFC 1813 §3.3.6 and P21. */
export async function read(args: READ3args, ctx: Nfs3Context): Promise<READ3res> {
  const file = await ctx.target(args.file)
  if (!file.ok) return { status: file.status, resfail: { file_attributes: null } }
  const attrs = fattr(file, file.attr)
  // A directory is ISDIR, any other non-regular file INVAL: knfsd's nfsd_mode_check
  // (nfserr_isdir; nfserr_wrong_type, which nfsd3_map_status sends as INVAL).
  if (file.attr.type === 'dir') return { status: nfsstat3.NFS3ERR_ISDIR, resfail: { file_attributes: attrs } }
  if (file.attr.type !== 'file') return { status: nfsstat3.NFS3ERR_INVAL, resfail: { file_attributes: attrs } }
  if (!mayRead(file.user, file.attr)) return { status: nfsstat3.NFS3ERR_ACCES, resfail: { file_attributes: attrs } }

  // The server may return fewer bytes than asked (a short read); eof tells the client why.
  const count = Math.min(args.count, ctx.limits.rtmax)
  try {
    const r = await file.vfs.read(file.ref, args.offset, count)
    // Lent data goes to the socket by reference (XdrWriter); the loan ends when it has been written.
    if (r.release !== undefined) releaseWhenSent(r.data, r.release)
    return { status: nfsstat3.NFS3_OK, resok: { file_attributes: fattr(file, r.attr), count: r.data.length, eof: r.eof, data: r.data } }
  } catch (err) {
    return { status: ctx.status(err), resfail: { file_attributes: await postOpOf(file) } }
  }
}
