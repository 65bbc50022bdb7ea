import { entry3, nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { DirEntry } from '../../../vfs/types.ts'
import type { READDIR3args, READDIR3res } from '../../../xdr/generated/nfs3.ts'
import { encodedList } from '../../../xdr/runtime/encoded-list.ts'
import { XdrEncodeError } from '../../../xdr/runtime/errors.ts'
import type { Nfs3Context } from '../context.ts'
import { postOpOf } from '../context.ts'
import { EntryWriter } from '../entry-writer.ts'
import { collect, entry3Size, openListing, ZERO_COOKIEVERF } from '../readdir-budget.ts'

/** RFC 1813 §3.3.16, P2, P4: `count` bounds the whole READDIR3res, every XDR word counted. */
export async function readdir(args: READDIR3args, ctx: Nfs3Context): Promise<READDIR3res> {
  const listing = await openListing(args.dir, args.count, ctx)
  if (!listing.ok) return { status: listing.status, resfail: { dir_attributes: listing.dirAttributes } }
  const { dir, dirAttributes, bytes } = listing
  // Entries go straight into the reply's bytes (entry-writer.ts), no entry3 object each.
  const out = new EntryWriter(Math.min(bytes, 64 * 1024))
  let list: { count: number; eof: boolean }
  try {
    list = await collect(dir.vfs, dir.ref, args.cookie, { bytes, dirBytes: Infinity, minEntry: entry3Size(1) }, {
      prepare: () => undefined,
      size: (e: DirEntry) => entry3Size(e.name.length),
      write: (e: DirEntry) => {
        out.entry3(e)
      },
    })
  } catch (err) {
    // A value the reply cannot carry fails the call as the codec would have (SYSTEM_ERR), not as an NFS status.
    if (err instanceof XdrEncodeError) throw err
    return { status: ctx.status(err), resfail: { dir_attributes: await postOpOf(dir) } }
  }
  // Not even one entry fits, and there are entries left: the client must ask for more (chimera #958).
  if (list.count === 0 && !list.eof) return { status: nfsstat3.NFS3ERR_TOOSMALL, resfail: { dir_attributes: dirAttributes } }
  return {
    status: nfsstat3.NFS3_OK,
    resok: { dir_attributes: dirAttributes, cookieverf: ZERO_COOKIEVERF, reply: { entries: encodedList(entry3, out.finish()), eof: list.eof } },
  }
}
