/*
 * The shared body of REMOVE and RMDIR (RFC 1813 §3.3.12, §3.3.13). Each
 * procedure passes its own name rules; the vfs enforces the type (REMOVE of a
 * directory is ISDIR, RMDIR of a non-directory NOTDIR, as unlink(2)/rmdir(2)).
 */
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import type { diropargs3, nfsstat3 as Nfsstat3, wcc_data } from '../../xdr/generated/nfs3.ts'
import type { Attr } from '../../vfs/types.ts'
import { wccData } from './attrs.ts'
import type { ErrStat, Nfs3Context, Target } from './context.ts'
import { failWcc, fsidOf, unchangedWcc } from './context.ts'
import { openDirForChange } from './dirop.ts'
import { commitChange } from './durable.ts'
import { stickyAllows } from './permission.ts'

export interface UnlinkResult {
  status: Nfsstat3
  dir_wcc: wcc_data
}

/**
 * In a sticky directory only the entry's owner, the directory's owner or root
 * may remove or replace it (may_delete → check_sticky: EPERM → NFS3ERR_PERM).
 * Returns null when allowed, or the status to answer.
 */
export async function stickyStatus(ctx: Nfs3Context, dir: Target, name: Buffer): Promise<ErrStat | null> {
  if ((dir.attr.mode & 0o1000) === 0 || dir.user.uid === 0) return null
  let victim: Attr
  try {
    victim = (await dir.vfs.lookup(dir.ref, name)).attr
  } catch (err) {
    return ctx.status(err)
  }
  return stickyAllows(dir.user, dir.attr, victim) ? null : nfsstat3.NFS3ERR_PERM
}

export async function unlinkEntry(
  ctx: Nfs3Context,
  where: diropargs3,
  checkName: (name: Buffer) => ErrStat | null,
  op: 'remove' | 'rmdir',
): Promise<UnlinkResult> {
  const opened = await openDirForChange(ctx, where, checkName)
  if (!opened.ok) return { status: opened.status, dir_wcc: opened.dir_wcc }
  const { dir } = opened
  const sticky = await stickyStatus(ctx, dir, where.name)
  if (sticky !== null) return { status: sticky, dir_wcc: sticky === nfsstat3.NFS3ERR_PERM ? unchangedWcc(dir, dir.attr) : await failWcc(dir) }
  try {
    const change = op === 'remove' ? await dir.vfs.remove(dir.ref, where.name) : await dir.vfs.rmdir(dir.ref, where.name)
    const dir_wcc = wccData(change.before, change.after, fsidOf(dir))
    // The removed object's inode (its link count, its freeing) is in the same journal transaction.
    return { status: (await commitChange(ctx, dir, [dir.ref])) ?? nfsstat3.NFS3_OK, dir_wcc }
  } catch (err) {
    return { status: ctx.status(err), dir_wcc: await failWcc(dir) }
  }
}
