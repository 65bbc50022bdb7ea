import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { entryplus3, READDIRPLUS3args, READDIRPLUS3res } from '../../../xdr/generated/nfs3.ts'
import type { Attr, DirEntry, FileRef } from '../../../vfs/types.ts'
import type { Nfs3Context, Target } from '../context.ts'
import { fattr, postOpOf } from '../context.ts'
import type { Built } from '../readdir-budget.ts'
import { collect, entry3Size, openListing, postOpAttrSize, postOpFhSize, ZERO_COOKIEVERF } from '../readdir-budget.ts'

/** The typical entry: name, attributes and a handle; only sizes vfs pages. */
const TYPICAL_ENTRY = entry3Size(8) + postOpAttrSize(true) + postOpFhSize(Buffer.alloc(32))

/** An entry's object, for its attributes and handle; null when it cannot be had (P3: both may be absent). */
async function entryObject(dir: Target, e: DirEntry): Promise<{ ref: FileRef; attr: Attr } | null> {
  try {
    if (e.ref !== undefined) return { ref: e.ref, attr: await dir.vfs.getattr(e.ref) }
    return await dir.vfs.lookup(dir.ref, e.name)
  } catch {
    return null // removed since the listing was read
  }
}

function entryOf(ctx: Nfs3Context, dir: Target, e: DirEntry, obj: { ref: FileRef; attr: Attr } | null): Built<entryplus3> {
  const handle = obj === null ? null : ctx.host.handleForReply(dir.exportId, obj.ref)
  const dirBytes = entry3Size(e.name.length)
  return {
    item: {
      fileid: e.fileid,
      name: e.name,
      cookie: e.cookie,
      name_attributes: obj === null ? null : fattr(dir, obj.attr),
      name_handle: handle === null ? null : { data: handle },
    },
    bytes: dirBytes + postOpAttrSize(obj !== null) + postOpFhSize(handle),
    dirBytes,
  }
}

/** Most backends stat entries to list them: then the entry is built at once, with no call per entry. */
function buildEntry(ctx: Nfs3Context, dir: Target, e: DirEntry): Built<entryplus3> | Promise<Built<entryplus3>> {
  if (e.ref !== undefined && e.attr !== undefined) return entryOf(ctx, dir, e, { ref: e.ref, attr: e.attr })
  return entryObject(dir, e).then((obj) => entryOf(ctx, dir, e, obj))
}

/**
 * RFC 1813 §3.3.17, P3, P4: `maxcount` bounds the whole READDIRPLUS3resok and
 * is the hard limit; `dircount` bounds the directory information (the bytes
 * READDIR would send), 0 meaning no such limit.
 */
export async function readdirplus(args: READDIRPLUS3args, ctx: Nfs3Context): Promise<READDIRPLUS3res> {
  const listing = await openListing(args.dir, args.maxcount, ctx)
  if (!listing.ok) return { status: listing.status, resfail: { dir_attributes: listing.dirAttributes } }
  const { dir, dirAttributes, bytes } = listing
  const dirBytes = args.dircount === 0 ? Infinity : Math.min(args.dircount, ctx.limits.maxReaddirCount)
  try {
    const list = await collect(dir.vfs, dir.ref, args.cookie, { bytes, dirBytes, minEntry: TYPICAL_ENTRY }, (e) => buildEntry(ctx, dir, e))
    if (list.entries.length === 0 && !list.eof) return { status: nfsstat3.NFS3ERR_TOOSMALL, resfail: { dir_attributes: dirAttributes } }
    return {
      status: nfsstat3.NFS3_OK,
      resok: { dir_attributes: dirAttributes, cookieverf: ZERO_COOKIEVERF, reply: { entries: list.entries, eof: list.eof } },
    }
  } catch (err) {
    return { status: ctx.status(err), resfail: { dir_attributes: await postOpOf(dir) } }
  }
}
