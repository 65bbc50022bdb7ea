/*
 * The shared first half of every procedure that changes a directory
 * (CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, LINK; RENAME twice), and the
 * shared reply of the create family. Each procedure keeps its own checks
 * (types, names) and calls these for what is the same.
 */
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import type { diropargs3, post_op_attr, post_op_fh3, sattr3, wcc_data } from '../../xdr/generated/nfs3.ts'
import type { Created, Owner, SetAttr } from '../../vfs/types.ts'
import { setAttrOf, wccData } from './attrs.ts'
import type { ErrStat, Nfs3Context, Target } from './context.ts'
import { failWcc, fattr, fsidOf, handleOf, unchangedWcc } from './context.ts'
import { commitChange } from './durable.ts'
import { MAY_EXEC, MAY_WRITE, permits } from './permission.ts'

export type DirOpen = { ok: true; dir: Target } | { ok: false; status: ErrStat; dir_wcc: wcc_data }

/**
 * Resolve the directory a change happens in, in knfsd's order (fh_verify, then
 * the name): not a directory → NOTDIR; read-only export → ROFS; the name
 * check the procedure passes; then write and search permission on the
 * directory (NFSD_MAY_CREATE / NFSD_MAY_REMOVE) → ACCES.
 */
export async function openDirForChange(
  ctx: Nfs3Context,
  where: diropargs3,
  checkName: (name: Buffer) => ErrStat | null,
): Promise<DirOpen> {
  const dir = await ctx.target(where.dir)
  if (!dir.ok) return { ok: false, status: dir.status, dir_wcc: { before: null, after: null } }
  const fail = (status: ErrStat): DirOpen => ({ ok: false, status, dir_wcc: unchangedWcc(dir, dir.attr) })
  if (dir.attr.type !== 'dir') return fail(nfsstat3.NFS3ERR_NOTDIR)
  if (dir.readOnly) return fail(nfsstat3.NFS3ERR_ROFS)
  const bad = checkName(where.name)
  if (bad !== null) return fail(bad)
  if (!permits(dir.user, dir.attr, MAY_WRITE | MAY_EXEC)) return fail(nfsstat3.NFS3ERR_ACCES)
  return { ok: true, dir }
}

/**
 * The owner of a new object: the caller, except that a setgid directory
 * passes its group on (inode_init_owner, as on every Linux filesystem).
 */
export function newOwner(dir: Target): Owner {
  // The caller rides along: a new inode's or directory block's room may be root's reserve.
  return { uid: dir.user.uid, gid: (dir.attr.mode & 0o2000) !== 0 ? dir.attr.gid : dir.user.gid, caller: dir.user }
}

/**
 * The attributes a create applies. uid and gid in them are honoured for root
 * only, as knfsd's nfsd_create_setattr does ("Setting uid/gid works only for root").
 */
export function createAttrs(dir: Target, s: sattr3): SetAttr {
  const set = setAttrOf(s)
  if (dir.user.uid !== 0) {
    delete set.uid
    delete set.gid
  }
  return set
}

export interface CreatedOk {
  obj: post_op_fh3
  obj_attributes: post_op_attr
  dir_wcc: wcc_data
}

/** CREATE3res, MKDIR3res, SYMLINK3res and MKNOD3res share this shape. */
export type CreatedRes = { status: 0; resok: CreatedOk } | { status: ErrStat; resfail: { dir_wcc: wcc_data } }

/** Run the vfs create, make it durable (durable.ts), and build the reply; a failure carries the directory's current attributes. */
export async function createIn(ctx: Nfs3Context, dir: Target, op: () => Promise<Created>): Promise<CreatedRes> {
  try {
    const c = await op()
    // The parent's fsync only: on ext4 and xfs the new inode is in the same journal transaction
    // as its entry, so that one commit holds both, and a second fsync (of the child) would cost
    // ext4 another device flush (knfsd commits both). Likewise an UNCHECKED create's truncation.
    const unsynced = await commitChange(ctx, dir, [dir.ref])
    if (unsynced !== null) return { status: unsynced, resfail: { dir_wcc: wccData(c.dir.before, c.dir.after, fsidOf(dir)) } }
    return {
      status: nfsstat3.NFS3_OK,
      resok: {
        obj: handleOf(ctx, dir, c.ref),
        obj_attributes: fattr(dir, c.attr),
        dir_wcc: wccData(c.dir.before, c.dir.after, fsidOf(dir)),
      },
    }
  } catch (err) {
    return { status: ctx.status(err), resfail: { dir_wcc: await failWcc(dir) } }
  }
}

export function createFail(status: ErrStat, dir_wcc: wcc_data): CreatedRes {
  return { status, resfail: { dir_wcc } }
}
