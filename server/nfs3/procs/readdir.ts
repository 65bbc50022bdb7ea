import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { entry3, READDIR3args, READDIR3res } from '../../../xdr/generated/nfs3.ts'
import type { Nfs3Context } from '../context.ts'
import { postOpOf } from '../context.ts'
import { collect, entry3Size, openListing, ZERO_COOKIEVERF } from '../readdir-budget.ts'

/** RFC 1813 §3.3.16, P2, P4: `count` bounds the whole READDIR3res, every XDR word counted. */
export async function readdir(args: READDIR3args, ctx: Nfs3Context): Promise<READDIR3res> {
  const listing = await openListing(args.dir, args.count, ctx)
  if (!listing.ok) return { status: listing.status, resfail: { dir_attributes: listing.dirAttributes } }
  const { dir, dirAttributes, bytes } = listing
  try {
    const list = await collect<entry3>(dir.vfs, dir.ref, args.cookie, { bytes, dirBytes: Infinity, minEntry: entry3Size(1) }, (e) => {
      const size = entry3Size(e.name.length)
      return { item: { fileid: e.fileid, name: e.name, cookie: e.cookie }, bytes: size, dirBytes: size }
    })
    // Not even one entry fits, and there are entries left: the client must ask for more (chimera #958).
    if (list.entries.length === 0 && !list.eof) return { status: nfsstat3.NFS3ERR_TOOSMALL, resfail: { dir_attributes: dirAttributes } }
    return {
      status: nfsstat3.NFS3_OK,
      resok: { dir_attributes: dirAttributes, cookieverf: ZERO_COOKIEVERF, reply: { entries: list.entries, eof: list.eof } },
    }
  } catch (err) {
    return { status: ctx.status(err), resfail: { dir_attributes: await postOpOf(dir) } }
  }
}
