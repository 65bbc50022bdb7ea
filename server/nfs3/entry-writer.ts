/*
 * READDIR and READDIRPLUS entries written straight into bytes (RFC 1813
 * §3.3.16 entry3, §3.3.17 entryplus3 with its post_op_attr fattr3 and
 * post_op_fh3), from the DirEntry, Attr and handle. The generated codecs
 * need an object per entry, per fattr3, per nfstime3 and per specdata3: at
 * ~200 entries a 32 KiB page those objects were the reply's garbage and
 * most of its CPU (bench/README.md, session 39). The bytes are the same as
 * the codecs' (test/server/nfs3/entry-writer.test.ts compares them), and so
 * are the refusals: a value out of its XDR type's range throws
 * XdrEncodeError as XdrWriter does.
 *
 * The result feeds xdr/runtime/encoded-list.ts: each entry is its list's
 * TRUE "value follows" then the entry; the final FALSE is the list codec's.
 */
import { checkI32 as i32, checkU32 as u32, checkU64 as u64 } from '../../xdr/runtime/checks.ts'
import { XdrEncodeError } from '../../xdr/runtime/errors.ts'
import type { Attr, DirEntry, FileRef, Timespec } from '../../vfs/types.ts'
import type { Nfs3Host } from './host.ts'
import { ftype3Of, nfstimeSeconds } from './attrs.ts'

/** RFC 1813 §2.5 NFS3_FHSIZE, nfs_fh3's opaque<> bound. */
const NFS3_FHSIZE = 64
/**
 * Replies' entries are carved out of shared slabs, as Buffer.allocUnsafe
 * carves small buffers out of its pool: a 32 KiB page had a backing store
 * of its own allocated each reply. A writer reserves its room when made (it
 * writes across the awaits of a listing, while other replies carve theirs)
 * and gives back what it did not use if no one has carved after it. A slab
 * is freed when the last reply made from it is.
 */
const SLAB = 256 * 1024
let slab = Buffer.allocUnsafe(0)
let slabUsed = 0

function carve(size: number): Buffer {
  if (size > SLAB / 4) return Buffer.allocUnsafe(size)
  if (slab.length - slabUsed < size) {
    slab = Buffer.allocUnsafe(SLAB)
    slabUsed = 0
  }
  const out = slab.subarray(slabUsed, slabUsed + size)
  slabUsed += size
  return out
}

/** Give back the tail of `buf` past `used`, if buf was the last carved out of the current slab. */
function giveBack(buf: Buffer, used: number): void {
  if (buf.buffer !== slab.buffer || buf.byteOffset - slab.byteOffset + buf.length !== slabUsed) return
  // Keep the next carve 8-byte aligned (DataView does not need it; typed arrays over the slab might).
  slabUsed -= buf.length - ((used + 7) & ~7)
}

/** What mints a handle into a buffer (the server's Nfs3Host). */
export type HandleWriter = Pick<Nfs3Host, 'writeHandle'>

export class EntryWriter {
  private buf: Buffer
  private view: DataView
  private pos = 0
  /** Entries written so far. */
  count = 0

  constructor(initialSize: number) {
    this.buf = carve(Math.max(64, (initialSize + 7) & ~7))
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
  }

  /** Room for `n` more bytes (callers know an entry's size before writing it). */
  private fit(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength)
  }

  /** An opaque<>: length, bytes, zero padding to a word (RFC 4506 §4.10). */
  private opaque(data: Buffer): void {
    const view = this.view
    const buf = this.buf
    let pos = this.pos
    view.setUint32(pos, data.length)
    pos += 4
    // Names and handles are short: a loop beats Buffer#set's call overhead below ~64 bytes (as XdrWriter).
    if (data.length <= 64) for (let i = 0; i < data.length; i++) buf[pos++] = data[i] ?? 0
    else {
      buf.set(data, pos)
      pos += data.length
    }
    while ((pos & 3) !== 0) buf[pos++] = 0
    this.pos = pos
  }

  private time(t: Timespec): void {
    this.view.setUint32(this.pos, u32(nfstimeSeconds(t.sec)))
    this.view.setUint32(this.pos + 4, u32(t.nsec))
    this.pos += 8
  }

  /** RFC 1813 §2.5 fattr3, 84 bytes, as attrs.ts fattr3Of builds it. */
  private fattr3(a: Attr, fsid: bigint): void {
    const type = ftype3Of(a.type) as number | undefined
    const view = this.view
    const at = this.pos
    view.setInt32(at, i32(type ?? NaN))
    // The type travels in `type`; mode carries only the low 12 bits.
    view.setUint32(at + 4, a.mode & 0o7777)
    view.setUint32(at + 8, u32(a.nlink))
    view.setUint32(at + 12, u32(a.uid))
    view.setUint32(at + 16, u32(a.gid))
    view.setBigUint64(at + 20, u64(a.size))
    view.setBigUint64(at + 28, u64(a.used))
    view.setUint32(at + 36, u32(a.rdev.major))
    view.setUint32(at + 40, u32(a.rdev.minor))
    view.setBigUint64(at + 44, u64(fsid))
    view.setBigUint64(at + 52, u64(a.fileid))
    this.pos = at + 60
    this.time(a.atime)
    this.time(a.mtime)
    this.time(a.ctime)
  }

  /** The list's TRUE, then fileid, name, cookie: what entry3 and entryplus3 begin with. */
  private head(e: DirEntry, extra: number): void {
    this.fit(4 + 8 + 4 + e.name.length + 3 + 8 + extra)
    const view = this.view
    view.setUint32(this.pos, 1)
    view.setBigUint64(this.pos + 4, u64(e.fileid))
    this.pos += 12
    this.opaque(e.name)
    view.setBigUint64(this.pos, u64(e.cookie))
    this.pos += 8
  }

  /** RFC 1813 §3.3.16 entry3. */
  entry3(e: DirEntry): void {
    this.head(e, 0)
    this.count++
  }

  /**
   * RFC 1813 §3.3.17 entryplus3: `attr` null and `handle` null are the
   * post_op_attr and post_op_fh3 that say "none" (P3: both may be absent).
   */
  entryplus3(e: DirEntry, attr: Attr | null, fsid: bigint, handle: Buffer | null): void {
    if (handle !== null && handle.length > NFS3_FHSIZE) throw new XdrEncodeError(`opaque<${NFS3_FHSIZE}>: length ${handle.length}`)
    this.head(e, 4 + 84 + 4 + 4 + NFS3_FHSIZE)
    // The bytes below were made room for by head(); a throw between them leaves only this page unusable.
    this.postOpAttr(attr, fsid)
    if (handle === null) {
      this.view.setUint32(this.pos, 0)
      this.pos += 4
    } else {
      this.view.setUint32(this.pos, 1)
      this.pos += 4
      this.opaque(handle)
    }
    this.count++
  }

  /**
   * entryplus3 with a handle, minted by `mint` (Nfs3Host.writeHandle) straight into these bytes:
   * READDIRPLUS writes ~200 a call, and a Buffer made for each, then copied, was most of a
   * cached handle's cost. `handleLength` is what the entry was sized with; a mint of another
   * length is a bug (Error), as is one longer than NFS3_FHSIZE (XdrEncodeError).
   */
  entryplus3Minted(e: DirEntry, attr: Attr | null, fsid: bigint, mint: HandleWriter, exportId: number, ref: FileRef, handleLength: number): void {
    if (handleLength > NFS3_FHSIZE) throw new XdrEncodeError(`opaque<${NFS3_FHSIZE}>: length ${handleLength}`)
    this.head(e, 4 + 84 + 4 + 4 + NFS3_FHSIZE)
    this.postOpAttr(attr, fsid)
    const at = this.pos
    // head() made room for NFS3_FHSIZE bytes after the bool and the length.
    const n = mint.writeHandle(exportId, ref, this.buf, at + 8)
    if (n !== handleLength) throw new Error(`a handle minted ${String(n)} bytes long, sized as ${String(handleLength)}`)
    this.view.setUint32(at, 1)
    this.view.setUint32(at + 4, n)
    let pos = at + 8 + n
    while ((pos & 3) !== 0) this.buf[pos++] = 0
    this.pos = pos
    this.count++
  }

  private postOpAttr(attr: Attr | null, fsid: bigint): void {
    if (attr === null) {
      this.view.setUint32(this.pos, 0)
      this.pos += 4
    } else {
      this.view.setUint32(this.pos, 1)
      this.pos += 4
      this.fattr3(attr, fsid)
    }
  }

  /** The entries written, as a view of this writer's memory (hand it to one reply; the writer is done). */
  finish(): Buffer {
    giveBack(this.buf, this.pos)
    return this.buf.subarray(0, this.pos)
  }
}
