/*
 * RFC 1813 §1.6: "The following data modifying procedures are synchronous:
 * WRITE (with stable flag set to FILE_SYNC), CREATE, MKDIR, SYMLINK, MKNOD,
 * REMOVE, RMDIR, RENAME, LINK, and COMMIT" — the change is on stable storage
 * when the reply goes. WRITE and COMMIT fsync their file in the backend; the
 * namespace procedures (and SETATTR, which knfsd commits too) call this after
 * their change, as knfsd calls commit_metadata() under the `sync` export
 * option. An `async` export skips
 * it (exports(5): faster, and a server crash may lose what it acknowledged),
 * as do backends durable on return (no commitMetadata).
 */
import type { FileRef } from '../../vfs/types.ts'
import type { ErrStat, Nfs3Context } from './context.ts'
import type { Resolved } from './host.ts'

/** null once `refs` are durable (or need not be), else the status to answer (NFS3ERR_IO for a failed flush). */
export async function commitChange(ctx: Nfs3Context, at: Resolved, refs: readonly FileRef[]): Promise<ErrStat | null> {
  if (!at.sync || at.vfs.commitMetadata === undefined) return null
  try {
    await at.vfs.commitMetadata(refs)
    return null
  } catch (err) {
    return ctx.status(err)
  }
}
