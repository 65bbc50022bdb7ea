import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { SYMLINK3args, SYMLINK3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { unchangedWcc } from '../context.ts'
import { createAttrs, createFail, createIn, newOwner, openDirForChange } from '../dirop.ts'
import { newNameStatus } from '../names.ts'

/** RFC 1813 §3.3.10. The target is stored as given, never interpreted by the server. */
export async function symlink(args: SYMLINK3args, ctx: Nfs3Context): Promise<SYMLINK3res> {
  const opened = await openDirForChange(ctx, args.where, newNameStatus)
  if (!opened.ok) return createFail(opened.status, opened.dir_wcc)
  const { dir } = opened
  if (!dir.vfs.capabilities().symlinks) return createFail(nfsstat3.NFS3ERR_NOTSUPP, unchangedWcc(dir, dir.attr))
  const attr = createAttrs(dir, args.symlink.symlink_attributes)
  // A symlink's mode is always 0777 on Linux; knfsd drops the mode from the create attributes.
  delete attr.mode
  return createIn(ctx, dir, () => dir.vfs.symlink(dir.ref, args.where.name, args.symlink.symlink_data, attr, newOwner(dir)))
}
