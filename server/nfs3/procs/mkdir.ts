import type { MKDIR3args, MKDIR3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { createAttrs, createFail, createIn, newOwner, openDirForChange } from '../dirop.ts'
import { newNameStatus } from '../names.ts'

/** RFC 1813 §3.3.9. */
export async function mkdir(args: MKDIR3args, ctx: Nfs3Context): Promise<MKDIR3res> {
  const opened = await openDirForChange(ctx, args.where, newNameStatus)
  if (!opened.ok) return createFail(opened.status, opened.dir_wcc)
  const { dir } = opened
  const attr = createAttrs(dir, args.attributes)
  // A directory made in a setgid directory is setgid too (inode_init_owner).
  if ((dir.attr.mode & 0o2000) !== 0) attr.mode = (attr.mode ?? 0o755) | 0o2000
  return createIn(ctx, dir, () => dir.vfs.mkdir(dir.ref, args.where.name, attr, newOwner(dir)))
}
