import { createmode3, nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { CREATE3args, CREATE3res } from '../../../xdr/generated/nfs3.ts'
import type { CreateMode, SetAttr } from '../../../vfs/types.ts'
import type { ErrStat, Target } from '../context.ts'
import type { Nfs3Context } from '../context.ts'
import { unchangedWcc } from '../context.ts'
import { createAttrs, createFail, createIn, newOwner, openDirForChange } from '../dirop.ts'
import { newNameStatus } from '../names.ts'
import { mayWrite } from '../permission.ts'

/**
 * UNCHECKED on an existing regular file applies only the size (knfsd
 * nfsd3_create_file: `iap->ia_valid &= ATTR_SIZE`), which needs write
 * permission on that file, the owner overriding.
 */
async function uncheckedAttrs(dir: Target, name: Buffer, set: SetAttr): Promise<{ set: SetAttr } | { status: ErrStat }> {
  let existing
  try {
    existing = await dir.vfs.lookup(dir.ref, name)
  } catch {
    return { set } // absent (or unreadable: the create itself will say why)
  }
  if (existing.attr.type !== 'file') return { set }
  const sizeOnly: SetAttr = set.size === undefined ? {} : { size: set.size }
  if (sizeOnly.size !== undefined && !mayWrite(dir.user, existing.attr)) return { status: nfsstat3.NFS3ERR_ACCES }
  return { set: sizeOnly }
}

/** RFC 1813 §3.3.8 and P5: UNCHECKED, GUARDED, and EXCLUSIVE with its verifier and no sattr3. */
export async function create(args: CREATE3args, ctx: Nfs3Context): Promise<CREATE3res> {
  const opened = await openDirForChange(ctx, args.where, newNameStatus)
  if (!opened.ok) return createFail(opened.status, opened.dir_wcc)
  const { dir } = opened
  const name = args.where.name
  let mode: CreateMode
  switch (args.how.mode) {
    case createmode3.EXCLUSIVE:
      // The vfs keeps the verifier with the file: a retransmission finds it and succeeds.
      mode = { how: 'exclusive', verifier: args.how.verf }
      break
    case createmode3.GUARDED:
      mode = { how: 'guarded', attr: createAttrs(dir, args.how.obj_attributes) }
      break
    case createmode3.UNCHECKED: {
      const checked = await uncheckedAttrs(dir, name, createAttrs(dir, args.how.obj_attributes))
      if ('status' in checked) return createFail(checked.status, unchangedWcc(dir, dir.attr))
      mode = { how: 'unchecked', attr: checked.set }
      break
    }
  }
  return createIn(ctx, dir, () => dir.vfs.create(dir.ref, name, mode, newOwner(dir)))
}
