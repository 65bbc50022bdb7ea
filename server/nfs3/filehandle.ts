import { timingSafeEqual } from 'node:crypto'
import { HANDLE_MAC_SIZE, HandleMac } from './handle-mac.ts'

/*
 * Our nfs_fh3 (RFC 1813 §2.5; DESIGN.md §3.4). A handle names persistent
 * identity, never process state, so it survives restarts and renames:
 *
 *   offset  size  field
 *   0       1     version (1)
 *   1       3     reserved, zero
 *   4       4     export id (u32, big-endian; server/exports/table.ts exportId)
 *   8       8     file id (u64, big-endian; the backend's FileRef.id)
 *   16      4     generation (u32; changes when the backend reuses an id)
 *   20      12    MAC: HMAC-SHA256(handle key, bytes 0..19), first 12 bytes
 *
 * 32 bytes in all, well under NFS3_FHSIZE (64). The MAC makes handles
 * unforgeable bearer tokens: a client cannot reach an object by guessing its
 * file id, or move a handle to another export by editing the export id.
 * Anything malformed is BADHANDLE; whether a well-formed handle is STALE
 * (unknown export, gone object, generation mismatch) is the caller's call.
 *
 * Keys are per export (issue 17 §3): an export without a key of its own uses
 * the server's (state dir `handle.key`); a cluster export uses the key in its
 * database, which every server of that cluster shares. The export id in bytes
 * 4..7 picks the key and is itself under the MAC, so a handle moved to another
 * export by editing its id is checked with that export's key and refused.
 * While a cluster export's database has not been reached its key is unknown
 * ('pending'): its handles can be neither verified nor minted, and the caller
 * answers "try again later" (NFS3ERR_JUKEBOX) rather than BADHANDLE.
 */

export const FH_VERSION = 1
export const FH_SIZE = 32
const BODY_SIZE = 20
const MAC_SIZE = HANDLE_MAC_SIZE

/** What a file handle names: the stored object (same shape as vfs FileRef). */
export interface HandleRef {
  id: bigint
  gen: number
}

export type DecodedHandle =
  | { ok: true; exportId: number; ref: HandleRef }
  | { ok: false; reason: 'badhandle' }
  /** Well formed, of an export whose key is not known yet (its cluster database not reached). */
  | { ok: false; reason: 'pending'; exportId: number }

/** An export's own key, or 'pending' while it is being fetched (see setExportKey). */
export type ExportKey = Buffer | 'pending'

/**
 * Handles verified (or minted) recently, so the HMAC runs once per object
 * rather than once per request (it is the dearest part of a GETATTR). Only
 * handles whose MAC checked out ever enter, compared on all 32 bytes MAC
 * included, so a forged handle always misses and is verified (and refused).
 *
 * A direct-mapped table in one Buffer: slot (export id, low 32 bits of the
 * file id) holds the last good handle of that slot, a newer one overwriting
 * it. No JavaScript object per handle: the Maps of Buffers and strings this
 * replaced (65,536 handles each way) held ~30 MiB of heap that a walk of a
 * large tree turned over every 65,536 files, each entry living long enough to
 * be promoted to V8's old generation before it died (bench/README.md,
 * session 35). File ids are inode numbers, handed out densely, so
 * consecutive files take consecutive slots.
 */
const CACHE_SLOTS = 1 << 16

export class HandleCodec {
  private readonly key: HandleMac
  /** Exports with keys of their own (cluster exports), by export id. */
  private readonly exportKeys = new Map<number, { raw: Buffer; key: HandleMac } | 'pending'>()
  /** CACHE_SLOTS good handles of FH_SIZE bytes; a slot of zeros is empty (no handle has version 0). */
  private readonly table = Buffer.alloc(CACHE_SLOTS * FH_SIZE)
  private readonly tableView = new DataView(this.table.buffer, this.table.byteOffset, this.table.byteLength)
  /** The MAC a handle being verified should carry (scratch). */
  private readonly want = Buffer.alloc(MAC_SIZE)
  /** The body of a handle being minted (scratch), and a view to write it. */
  private readonly bodyBytes = Buffer.alloc(BODY_SIZE)
  private readonly body = new DataView(this.bodyBytes.buffer, this.bodyBytes.byteOffset, BODY_SIZE)

  /** `key` is the server's secret (state dir `handle.key`); at least 16 bytes. */
  constructor(key: Buffer) {
    if (key.length < 16) throw new RangeError(`handle key must be at least 16 bytes, got ${key.length}`)
    this.key = new HandleMac(key)
  }

  /** Bytes the cache of good handles holds: its table, whatever it contains. */
  get cacheBytes(): number {
    return this.table.length
  }

  /**
   * Give export `exportId` a key of its own, mark it 'pending' (its handles get
   * reason 'pending' until a key is set), or null: back to the server's key.
   * A change drops every cached handle (rare: an export added or removed).
   */
  setExportKey(exportId: number, key: ExportKey | null): void {
    const cur = this.exportKeys.get(exportId)
    if (key === null) {
      if (cur === undefined) return
      this.exportKeys.delete(exportId)
    } else if (key === 'pending') {
      if (cur === 'pending') return
      this.exportKeys.set(exportId, 'pending')
    } else {
      if (key.length < 16) throw new RangeError(`handle key must be at least 16 bytes, got ${key.length}`)
      if (cur !== undefined && cur !== 'pending' && cur.raw.equals(key)) return
      this.exportKeys.set(exportId, { raw: Buffer.from(key), key: new HandleMac(key) })
    }
    this.table.fill(0)
  }

  /** The key export `exportId`'s handles are made with, or 'pending'. */
  private keyOf(exportId: number): HandleMac | 'pending' {
    const own = this.exportKeys.get(exportId)
    if (own === undefined) return this.key
    return own === 'pending' ? 'pending' : own.key
  }

  encode(exportId: number, ref: HandleRef): Buffer {
    return this.encodeShared(exportId, ref)
  }

  /**
   * The handle of `ref` in export `exportId`. Kept for encode()'s callers, who may build a reply
   * around it: it is always a buffer of the caller's own (a copy out of the table on a hit).
   */
  encodeShared(exportId: number, ref: HandleRef): Buffer {
    const fh = Buffer.allocUnsafe(FH_SIZE)
    this.writeInto(exportId, ref, fh, 0)
    return fh
  }

  /**
   * The handle of `ref` in export `exportId` written into `out` at `at` (FH_SIZE bytes, returned):
   * READDIRPLUS mints ~200 a call straight into its reply, where a Buffer made for each and copied
   * again was most of what a handle cost once its MAC was cached (bench/README.md, session 41).
   */
  writeInto(exportId: number, ref: HandleRef, out: Buffer, at: number): number {
    if (!Number.isInteger(exportId) || exportId < 0 || exportId > 0xffff_ffff) throw new RangeError(`export id out of range: ${exportId}`)
    if (ref.id < 0n || ref.id > 0xffff_ffff_ffff_ffffn) throw new RangeError(`file id out of range: ${ref.id}`)
    if (!Number.isInteger(ref.gen) || ref.gen < 0 || ref.gen > 0xffff_ffff) throw new RangeError(`generation out of range: ${ref.gen}`)
    if (at < 0 || out.length - at < FH_SIZE) throw new RangeError(`no room for a ${FH_SIZE}-byte handle at ${at} of ${out.length}`)
    // The body in scratch, compared with the slot word by word: nothing is allocated, and no BigInt
    // is taken apart (Buffer#writeBigUInt64BE makes several per call).
    const body = this.body
    body.setUint32(0, FH_VERSION << 24)
    body.setUint32(4, exportId)
    body.setBigUint64(8, ref.id)
    body.setUint32(16, ref.gen)
    const slot = slotIndex(exportId, body.getUint32(12)) * FH_SIZE
    const t = this.tableView
    // A hit: the slot holds a good handle with this body (READDIRPLUS asks for ~200 handles a call).
    if (
      t.getUint32(slot) === FH_VERSION << 24 &&
      t.getUint32(slot + 4) === exportId &&
      t.getUint32(slot + 8) === body.getUint32(8) &&
      t.getUint32(slot + 12) === body.getUint32(12) &&
      t.getUint32(slot + 16) === ref.gen
    ) {
      const table = this.table
      for (let i = 0; i < FH_SIZE; i++) out[at + i] = table[slot + i] ?? 0
      return FH_SIZE
    }
    const key = this.keyOf(exportId)
    // A pending export answers every request with EAGAIN before it has a ref to hand out.
    if (key === 'pending') throw new Error(`export ${exportId}: no handle key yet (its cluster database has not been reached)`)
    // Minted into its slot (replacing what was there), then copied out.
    const scratch = this.bodyBytes
    const table = this.table
    for (let i = 0; i < BODY_SIZE; i++) table[slot + i] = scratch[i] ?? 0
    key.write(scratch, table, slot + BODY_SIZE)
    for (let i = 0; i < FH_SIZE; i++) out[at + i] = table[slot + i] ?? 0
    return FH_SIZE
  }

  /** Never throws; `fh` may be a view into a request buffer and is not kept. */
  decode(fh: Uint8Array): DecodedHandle {
    if (fh.length !== FH_SIZE) return BAD
    const b = Buffer.from(fh.buffer, fh.byteOffset, fh.byteLength)
    if (b[0] !== FH_VERSION || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return BAD
    const exportId = b.readUInt32BE(4)
    const decoded: DecodedHandle = { ok: true, exportId, ref: { id: b.readBigUInt64BE(8), gen: b.readUInt32BE(16) } }
    // All 32 bytes equal to a handle whose MAC checked out: good (an empty slot's zeros never match version 1).
    const at = slotOf(b) * FH_SIZE
    if (this.table.compare(b, 0, FH_SIZE, at, at + FH_SIZE) === 0) return decoded
    const key = this.keyOf(exportId)
    if (key === 'pending') return { ok: false, reason: 'pending', exportId }
    key.write(b, this.want, 0)
    if (!timingSafeEqual(this.want, b.subarray(BODY_SIZE))) return BAD
    b.copy(this.table, at)
    return decoded
  }
}

/** The table slot of a handle: its export id and the low 32 bits of its file id, mixed. */
function slotOf(fh: Buffer): number {
  return slotIndex(fh.readUInt32BE(4), fh.readUInt32BE(12))
}

function slotIndex(exportId: number, idLow: number): number {
  return (idLow ^ Math.imul(exportId, 0x9e3779b1)) & (CACHE_SLOTS - 1)
}

const BAD: DecodedHandle = Object.freeze({ ok: false, reason: 'badhandle' })
