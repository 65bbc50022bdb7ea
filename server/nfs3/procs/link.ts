import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { LINK3args, LINK3res, post_op_attr, wcc_data } from '../../../xdr/generated/nfs3.ts'
import { wccData } from '../attrs.ts'
import type { ErrStat, Nfs3Context } from '../context.ts'
import { failWcc, fattr, fsidOf, postOpOf, sameExport } from '../context.ts'
import { openDirForChange } from '../dirop.ts'
import { commitChange } from '../durable.ts'
import { newNameStatus } from '../names.ts'

function fail(status: ErrStat, file_attributes: post_op_attr, linkdir_wcc: wcc_data): LINK3res {
  return { status, resfail: { file_attributes, linkdir_wcc } }
}

/** RFC 1813 §3.3.15: both replies carry the file's attributes and the directory's wcc_data. */
export async function link(args: LINK3args, ctx: Nfs3Context): Promise<LINK3res> {
  const file = await ctx.target(args.file)
  const fileAttrs = file.ok ? fattr(file, file.attr) : null
  const opened = await openDirForChange(ctx, args.link, newNameStatus)
  if (!file.ok) return fail(file.status, fileAttrs, opened.ok ? await failWcc(opened.dir) : opened.dir_wcc)
  if (!opened.ok) return fail(opened.status, fileAttrs, opened.dir_wcc)
  const { dir } = opened
  const dirWcc = await failWcc(dir)
  // The comments under RENAME apply (§3.3.15): another export is another filesystem.
  if (!sameExport(file, dir)) return fail(nfsstat3.NFS3ERR_XDEV, fileAttrs, dirWcc)
  // knfsd's nfsd_link answers a hard link to a directory with ISDIR (link(2) would say EPERM).
  if (file.attr.type === 'dir') return fail(nfsstat3.NFS3ERR_ISDIR, fileAttrs, dirWcc)
  if (!dir.vfs.capabilities().hardLinks) return fail(nfsstat3.NFS3ERR_NOTSUPP, fileAttrs, dirWcc)
  try {
    const r = await dir.vfs.link(file.ref, dir.ref, args.link.name, dir.user)
    const file_attributes = fattr(file, r.attr)
    const linkdir_wcc = wccData(r.dir.before, r.dir.after, fsidOf(dir))
    // The directory and the file (its link count), as knfsd: LINK is rare, the second fsync cheap enough.
    const unsynced = await commitChange(ctx, dir, [dir.ref, file.ref])
    if (unsynced !== null) return fail(unsynced, file_attributes, linkdir_wcc)
    return { status: nfsstat3.NFS3_OK, resok: { file_attributes, linkdir_wcc } }
  } catch (err) {
    return fail(ctx.status(err), await postOpOf(file), await failWcc(dir))
  }
}
