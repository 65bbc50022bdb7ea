import { FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_LINK, FSF3_SYMLINK, nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { FSINFO3args, FSINFO3res } from '../../../xdr/generated/nfs3.ts'
import type { VfsCapabilities } from '../../../vfs/types.ts'
import { nfstime } from '../attrs.ts'
import type { Nfs3Context } from '../context.ts'
import { fattr } from '../context.ts'

/** Clients align I/O to these; 4 KiB is the page size of every common client. */
const IO_MULTIPLE = 4096

function properties(caps: VfsCapabilities): number {
  // Homogeneous: every object of a backend answers PATHCONF alike.
  let p = FSF3_HOMOGENEOUS
  if (caps.hardLinks) p |= FSF3_LINK
  if (caps.symlinks) p |= FSF3_SYMLINK
  if (caps.canSetTime) p |= FSF3_CANSETTIME
  return p
}

/**
 * RFC 1813 §3.3.19 and P7: sizes the transport can carry (this call's
 * transport: 32 KiB on UDP), for any handle in the export.
 */
export async function fsinfo(args: FSINFO3args, ctx: Nfs3Context): Promise<FSINFO3res> {
  const obj = await ctx.target(args.fsroot)
  if (!obj.ok) return { status: obj.status, resfail: { obj_attributes: null } }
  const caps = obj.vfs.capabilities()
  const l = ctx.limits
  return {
    status: nfsstat3.NFS3_OK,
    resok: {
      obj_attributes: fattr(obj, obj.attr),
      rtmax: l.rtmax,
      rtpref: Math.min(l.rtpref, l.rtmax),
      rtmult: IO_MULTIPLE,
      wtmax: l.wtmax,
      wtpref: Math.min(l.wtpref, l.wtmax),
      wtmult: IO_MULTIPLE,
      dtpref: Math.min(l.dtpref, l.maxReaddirCount),
      maxfilesize: caps.maxFileSize,
      time_delta: nfstime(caps.timeDelta),
      properties: properties(caps),
    },
  }
}
