/*
 * READDIR and READDIRPLUS as the server answered them before session 39:
 * an object per entry (entry3, entryplus3 with its fattr3 from attrs.ts
 * fattr3Of), taken while they fit by the same budget rules, for the
 * generated codecs to encode. The tests' oracle for the direct path
 * (server/nfs3/entry-writer.ts), which must give the same bytes.
 */
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import type { entry3, entryplus3, READDIR3args, READDIR3res, READDIRPLUS3args, READDIRPLUS3res } from '../../xdr/generated/nfs3.ts'
import type { Attr, DirEntry, FileRef, Vfs } from '../../vfs/types.ts'
import type { Nfs3Context, Target } from '../../server/nfs3/context.ts'
import { fattr, postOpOf } from '../../server/nfs3/context.ts'
import type { Budget } from '../../server/nfs3/readdir-budget.ts'
import { entry3Size, openListing, postOpAttrSize, postOpFhSize, ZERO_COOKIEVERF } from '../../server/nfs3/readdir-budget.ts'

const MAX_PAGE = 4096
const TYPICAL_ENTRY = entry3Size(8) + postOpAttrSize(true) + postOpFhSize(32)

interface Built<E> {
  item: E
  bytes: number
  dirBytes: number
}

async function collect<E>(
  vfs: Vfs,
  dir: FileRef,
  cookie: bigint,
  budget: Budget,
  build: (e: DirEntry) => Built<E> | Promise<Built<E>>,
): Promise<{ entries: E[]; eof: boolean }> {
  const entries: E[] = []
  let { bytes, dirBytes } = budget
  let cursor = cookie
  for (;;) {
    const want = Math.min(MAX_PAGE, Math.max(1, Math.floor(bytes / budget.minEntry) + 1))
    const page = await vfs.readdir(dir, cursor, want)
    const built = await Promise.all(page.entries.map(async (e) => build(e)))
    for (const [i, e] of page.entries.entries()) {
      const b = built[i]
      if (b === undefined) break
      if (b.bytes > bytes || (entries.length > 0 && b.dirBytes > dirBytes)) return { entries, eof: false }
      entries.push(b.item)
      bytes -= b.bytes
      dirBytes -= b.dirBytes
      cursor = e.cookie
    }
    if (page.eof || page.entries.length === 0) return { entries, eof: page.eof }
  }
}

async function entryObject(dir: Target, e: DirEntry): Promise<{ ref: FileRef; attr: Attr } | null> {
  try {
    if (e.ref !== undefined) return { ref: e.ref, attr: await dir.vfs.getattr(e.ref) }
    return await dir.vfs.lookup(dir.ref, e.name)
  } catch {
    return null
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
    bytes: dirBytes + postOpAttrSize(obj !== null) + postOpFhSize(handle === null ? -1 : handle.length),
    dirBytes,
  }
}

export async function referenceReaddirplus(args: READDIRPLUS3args, ctx: Nfs3Context): Promise<READDIRPLUS3res> {
  const listing = await openListing(args.dir, args.maxcount, ctx)
  if (!listing.ok) return { status: listing.status, resfail: { dir_attributes: listing.dirAttributes } }
  const { dir, dirAttributes, bytes } = listing
  const dirBytes = args.dircount === 0 ? Infinity : Math.min(args.dircount, ctx.limits.maxReaddirCount)
  try {
    const list = await collect(dir.vfs, dir.ref, args.cookie, { bytes, dirBytes, minEntry: TYPICAL_ENTRY }, (e) =>
      e.ref !== undefined && e.attr !== undefined ? entryOf(ctx, dir, e, { ref: e.ref, attr: e.attr }) : entryObject(dir, e).then((obj) => entryOf(ctx, dir, e, obj)),
    )
    if (list.entries.length === 0 && !list.eof) return { status: nfsstat3.NFS3ERR_TOOSMALL, resfail: { dir_attributes: dirAttributes } }
    return { status: nfsstat3.NFS3_OK, resok: { dir_attributes: dirAttributes, cookieverf: ZERO_COOKIEVERF, reply: { entries: list.entries, eof: list.eof } } }
  } catch (err) {
    return { status: ctx.status(err), resfail: { dir_attributes: await postOpOf(dir) } }
  }
}

export async function referenceReaddir(args: READDIR3args, ctx: Nfs3Context): Promise<READDIR3res> {
  const listing = await openListing(args.dir, args.count, ctx)
  if (!listing.ok) return { status: listing.status, resfail: { dir_attributes: listing.dirAttributes } }
  const { dir, dirAttributes, bytes } = listing
  try {
    const list = await collect<entry3>(dir.vfs, dir.ref, args.cookie, { bytes, dirBytes: Infinity, minEntry: entry3Size(1) }, (e) => {
      const size = entry3Size(e.name.length)
      return { item: { fileid: e.fileid, name: e.name, cookie: e.cookie }, bytes: size, dirBytes: size }
    })
    if (list.entries.length === 0 && !list.eof) return { status: nfsstat3.NFS3ERR_TOOSMALL, resfail: { dir_attributes: dirAttributes } }
    return { status: nfsstat3.NFS3_OK, resok: { dir_attributes: dirAttributes, cookieverf: ZERO_COOKIEVERF, reply: { entries: list.entries, eof: list.eof } } }
  } catch (err) {
    return { status: ctx.status(err), resfail: { dir_attributes: await postOpOf(dir) } }
  }
}
