import { entryplus3, nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { READDIRPLUS3args, READDIRPLUS3res } from '../../../xdr/generated/nfs3.ts'
import { encodedList } from '../../../xdr/runtime/encoded-list.ts'
import { XdrEncodeError } from '../../../xdr/runtime/errors.ts'
import type { Attr, DirEntry, FileRef } from '../../../vfs/types.ts'
import type { Nfs3Context, Target } from '../context.ts'
import { fsidOf, postOpOf } from '../context.ts'
import { EntryWriter } from '../entry-writer.ts'
import type { EntrySink } from '../readdir-budget.ts'
import { collect, entry3Size, openListing, postOpAttrSize, postOpFhSize, ZERO_COOKIEVERF } from '../readdir-budget.ts'

/** The typical entry: name, attributes and a handle; only sizes vfs pages. */
const TYPICAL_ENTRY = entry3Size(8) + postOpAttrSize(true) + postOpFhSize(32)

type EntryObject = { ref: FileRef; attr: Attr } | null

/** An entry's object, for its attributes and handle; null when it cannot be had (P3: both may be absent). */
async function entryObject(dir: Target, e: DirEntry): Promise<EntryObject> {
  try {
    if (e.ref !== undefined) return { ref: e.ref, attr: await dir.vfs.getattr(e.ref) }
    return await dir.vfs.lookup(dir.ref, e.name)
  } catch {
    return null // removed since the listing was read
  }
}

/**
 * Each entry written into the reply's bytes as it is taken: no entryplus3,
 * fattr3 or nfstime3 objects (entry-writer.ts). An entry is sized with its
 * export's handle length and its handle minted straight into the reply.
 */
class PlusSink implements EntrySink {
  readonly out: EntryWriter
  private readonly ctx: Nfs3Context
  private readonly dir: Target
  private readonly fsid: bigint
  /** The page's objects, when it did not carry them all (most backends stat entries to list them). */
  private objects: EntryObject[] | null = null
  private attr: Attr | null = null
  /** The object of the entry last sized, whose handle write() mints into the reply; undefined: none. */
  private ref: FileRef | undefined = undefined
  /** The length of the export's handles. */
  private readonly handleSize: number

  constructor(ctx: Nfs3Context, dir: Target, bytes: number) {
    this.ctx = ctx
    this.dir = dir
    this.fsid = fsidOf(dir)
    this.out = new EntryWriter(Math.min(bytes, 64 * 1024))
    this.handleSize = ctx.host.handleSize(dir.exportId)
  }

  prepare(page: readonly DirEntry[]): void | Promise<void> {
    this.objects = null
    if (page.every((e) => e.ref !== undefined && e.attr !== undefined)) return
    // All of the page's lookups at once (at most a vfs page).
    return Promise.all(page.map(async (e) => (e.ref !== undefined && e.attr !== undefined ? { ref: e.ref, attr: e.attr } : entryObject(this.dir, e)))).then((objs) => {
      this.objects = objs
    })
  }

  size(e: DirEntry, i: number): number {
    let ref: FileRef | undefined
    if (this.objects === null) {
      ref = e.ref
      this.attr = e.attr ?? null
    } else {
      const obj = this.objects[i] ?? null
      ref = obj?.ref
      this.attr = obj?.attr ?? null
    }
    this.ref = ref
    return entry3Size(e.name.length) + postOpAttrSize(this.attr !== null) + postOpFhSize(ref === undefined ? -1 : this.handleSize)
  }

  write(e: DirEntry): void {
    if (this.ref === undefined) this.out.entryplus3(e, this.attr, this.fsid, null)
    else this.out.entryplus3Minted(e, this.attr, this.fsid, this.ctx.host, this.dir.exportId, this.ref, this.handleSize)
  }
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
  const sink = new PlusSink(ctx, dir, bytes)
  let list: { count: number; eof: boolean }
  try {
    list = await collect(dir.vfs, dir.ref, args.cookie, { bytes, dirBytes, minEntry: TYPICAL_ENTRY }, sink)
  } catch (err) {
    // A value the reply cannot carry fails the call as the codec would have (SYSTEM_ERR), not as an NFS status.
    if (err instanceof XdrEncodeError) throw err
    return { status: ctx.status(err), resfail: { dir_attributes: await postOpOf(dir) } }
  }
  if (list.count === 0 && !list.eof) return { status: nfsstat3.NFS3ERR_TOOSMALL, resfail: { dir_attributes: dirAttributes } }
  return {
    status: nfsstat3.NFS3_OK,
    resok: { dir_attributes: dirAttributes, cookieverf: ZERO_COOKIEVERF, reply: { entries: encodedList(entryplus3, sink.out.finish()), eof: list.eof } },
  }
}
