import { ftype3, nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { MKNOD3args, MKNOD3res, sattr3 } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { unchangedWcc } from '../context.ts'
import { createAttrs, createFail, createIn, newOwner, openDirForChange } from '../dirop.ts'
import { newNameStatus } from '../names.ts'

type NodeType = 'block' | 'char' | 'socket' | 'fifo'

/** RFC 1813 §3.3.11 and P23: special files only; REG, DIR and LNK are BADTYPE. */
export async function mknod(args: MKNOD3args, ctx: Nfs3Context): Promise<MKNOD3res> {
  const opened = await openDirForChange(ctx, args.where, newNameStatus)
  if (!opened.ok) return createFail(opened.status, opened.dir_wcc)
  const { dir } = opened
  const fail = (status: Exclude<nfsstat3, 0>): MKNOD3res => createFail(status, unchangedWcc(dir, dir.attr))

  let type: NodeType
  let sattr: sattr3
  let rdev = { major: 0, minor: 0 }
  const what = args.what
  switch (what.type) {
    case ftype3.NF3CHR:
    case ftype3.NF3BLK:
      type = what.type === ftype3.NF3CHR ? 'char' : 'block'
      sattr = what.device.dev_attributes
      rdev = { major: what.device.spec.specdata1, minor: what.device.spec.specdata2 }
      if (!dir.vfs.capabilities().deviceNodes) return fail(nfsstat3.NFS3ERR_NOTSUPP)
      // mknod(2): device nodes need CAP_MKNOD, i.e. root after squashing.
      if (dir.user.uid !== 0) return fail(nfsstat3.NFS3ERR_PERM)
      break
    case ftype3.NF3SOCK:
    case ftype3.NF3FIFO:
      type = what.type === ftype3.NF3SOCK ? 'socket' : 'fifo'
      sattr = what.pipe_attributes
      break
    default:
      return fail(nfsstat3.NFS3ERR_BADTYPE)
  }
  const attr = createAttrs(dir, sattr)
  return createIn(ctx, dir, () => dir.vfs.mknod(dir.ref, args.where.name, type, rdev, attr, newOwner(dir)))
}
