import { nfsstat3, stable_how } from '../../../xdr/generated/nfs3.ts'
import type { WRITE3args, WRITE3res, wcc_data } from '../../../xdr/generated/nfs3.ts'
import type { Stability } from '../../../vfs/types.ts'
import { wccData } from '../attrs.ts'
import type { ErrStat, Nfs3Context } from '../context.ts'
import { failWcc, fsidOf, unchangedWcc } from '../context.ts'
import { killedPrivs, mayWrite } from '../permission.ts'

const STABILITY: readonly Stability[] = ['unstable', 'data_sync', 'file_sync']
const LEVEL: Readonly<Record<Stability, stable_how>> = {
  unstable: stable_how.UNSTABLE,
  data_sync: stable_how.DATA_SYNC,
  file_sync: stable_how.FILE_SYNC,
}

function fail(status: ErrStat, file_wcc: wcc_data): WRITE3res {
  return { status, resfail: { file_wcc } }
}

/** RFC 1813 §3.3.7 and P10. */
export async function write(args: WRITE3args, ctx: Nfs3Context): Promise<WRITE3res> {
  const file = await ctx.target(args.file)
  if (!file.ok) return fail(file.status, { before: null, after: null })
  const unchanged = unchangedWcc(file, file.attr)
  // As READ: a directory is ISDIR, other non-regular files INVAL (knfsd nfsd_mode_check).
  if (file.attr.type === 'dir') return fail(nfsstat3.NFS3ERR_ISDIR, unchanged)
  if (file.attr.type !== 'file') return fail(nfsstat3.NFS3ERR_INVAL, unchanged)
  if (file.readOnly) return fail(nfsstat3.NFS3ERR_ROFS, unchanged)
  if (!mayWrite(file.user, file.attr)) return fail(nfsstat3.NFS3ERR_ACCES, unchanged)
  // P10: count and the opaque's length must agree; do not trust count alone (knfsd: INVAL).
  if (args.count !== args.data.length) return fail(nfsstat3.NFS3ERR_INVAL, unchanged)

  // More than wtmax is written short: the reply's count says how much, and the client continues.
  const data = args.data.length > ctx.limits.wtmax ? args.data.subarray(0, ctx.limits.wtmax) : args.data
  const stable = STABILITY[args.stable] ?? 'file_sync'
  try {
    // A write by anyone but root drops setuid (and group-executable setgid), as the VFS does for knfsd's writes.
    const killed = killedPrivs(file.user, file.attr)
    if (killed !== null) await file.vfs.setattr(file.ref, { mode: killed })
    // An async export (exports(5)) writes to the backend unstably and still answers the level asked, as knfsd's async
    // does: faster, and a server crash loses what it acknowledged. sync (the default) never does that.
    // As the caller (after squashing): only root may write into the file system's reserved blocks.
    const r = await file.vfs.write(file.ref, args.offset, data, file.sync ? stable : 'unstable', file.user)
    const committed = file.sync || LEVEL[r.committed] > args.stable ? LEVEL[r.committed] : args.stable
    // committed >= stable (RFC 1813 §3.3.7): a backend that did less than asked must not be reported as more.
    if (committed < args.stable) throw new Error(`vfs write committed ${r.committed}, asked ${stable}`)
    return {
      status: nfsstat3.NFS3_OK,
      resok: { file_wcc: wccData(killed === null ? r.before : file.attr, r.after, fsidOf(file)), count: r.count, committed, verf: ctx.host.writeVerifier() },
    }
  } catch (err) {
    return fail(ctx.status(err), await failWcc(file))
  }
}
