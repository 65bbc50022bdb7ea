import { XdrEncodeError } from './errors.ts'

const PAD = Buffer.alloc(4)
/** Opaques at least this long are appended by reference instead of copied. */
export const BY_REFERENCE_MIN = 512

/**
 * Appends XDR items (RFC 4506) to a growable scratch buffer. Large opaques
 * (READ data, READDIR blobs) are appended by reference as separate chunks,
 * so file data is never copied; finish() returns the chunks in order.
 */
export class XdrWriter {
  private buf: Buffer
  private view: DataView
  private pos = 0
  /** Start of the scratch bytes not yet handed out as a chunk. */
  private mark = 0
  private chunks: Buffer[] = []
  private chunkBytes = 0
  /** Bytes appended by reference so far (not in the scratch buffer). */
  private referenced = 0

  constructor(initialSize = 1024) {
    this.buf = Buffer.allocUnsafe(initialSize)
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
  }

  /** Bytes written so far, chunks included. */
  get length(): number {
    return this.chunkBytes + this.pos - this.mark
  }

  /** Bytes written into scratch memory (everything but opaques appended by reference): a size hint for the next writer. */
  get scratchLength(): number {
    return this.length - this.referenced
  }

  private fit(n: number): void {
    if (this.pos + n <= this.buf.length) return
    // Earlier chunks may still point into the old buffer; they stay valid because it is not reused.
    const size = Math.max(this.buf.length * 2, this.pos - this.mark + n + 256)
    const next = Buffer.allocUnsafe(size)
    this.buf.copy(next, 0, this.mark, this.pos)
    this.pos -= this.mark
    this.mark = 0
    this.buf = next
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength)
  }

  u32(v: number): void {
    // `v >>> 0 === v` holds exactly for integers in [0, 2^32): one check on the hot path.
    if (v >>> 0 !== v) throw new XdrEncodeError(`unsigned int out of range: ${String(v)}`)
    this.fit(4)
    this.view.setUint32(this.pos, v)
    this.pos += 4
  }

  i32(v: number): void {
    if (!Number.isInteger(v) || v < -0x8000_0000 || v > 0x7fff_ffff) throw new XdrEncodeError(`int out of range: ${String(v)}`)
    this.fit(4)
    this.view.setInt32(this.pos, v)
    this.pos += 4
  }

  u64(v: bigint): void {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new XdrEncodeError(`unsigned hyper out of range: ${String(v)}`)
    this.fit(8)
    // One call, no intermediate BigInts (shifting and masking allocate two per value).
    this.view.setBigUint64(this.pos, v)
    this.pos += 8
  }

  i64(v: bigint): void {
    if (v < -0x8000_0000_0000_0000n || v > 0x7fff_ffff_ffff_ffffn) throw new XdrEncodeError(`hyper out of range: ${String(v)}`)
    this.u64(BigInt.asUintN(64, v))
  }

  bool(v: boolean): void {
    this.u32(v ? 1 : 0)
  }

  /**
   * Room for a fixed-size item of n bytes written in place (the generator's
   * FLAT_ENCODERS: one room check instead of one a field): its position in
   * `scratch`. Nothing counts as written until advance(n), so an item
   * refused halfway leaves the message as it was.
   */
  room(n: number): number {
    this.fit(n)
    return this.pos
  }

  /** The scratch memory room() positions are in (valid until the next write). */
  get scratch(): DataView {
    return this.view
  }

  /** Count n bytes written in place after room(n). */
  advance(n: number): void {
    this.pos += n
  }

  /** RFC 4506 §4.9: exactly n bytes, zero padding always written. */
  fixedOpaque(data: Buffer, n: number): void {
    if (data.length !== n) throw new XdrEncodeError(`opaque[${String(n)}]: got ${String(data.length)} bytes`)
    this.bytes(data)
  }

  /** RFC 4506 §4.10. */
  opaque(data: Buffer, max: number = 0xffff_ffff): void {
    if (data.length > max) throw new XdrEncodeError(`opaque<${String(max)}>: length ${String(data.length)}`)
    this.u32(data.length)
    this.bytes(data)
  }

  string(s: string, max: number = 0xffff_ffff): void {
    this.opaque(Buffer.from(s, 'utf8'), max)
  }

  /**
   * Bytes already in XDR (whole words), appended as they are: by reference when
   * large, so the caller must leave them alone until the message is sent.
   */
  encoded(data: Buffer): void {
    if ((data.length & 3) !== 0) throw new XdrEncodeError(`encoded XDR of ${String(data.length)} bytes, not whole words`)
    this.bytes(data)
  }

  private bytes(data: Buffer): void {
    const pad = (4 - (data.length & 3)) & 3
    if (data.length >= BY_REFERENCE_MIN) {
      this.flushScratch()
      this.chunks.push(data)
      this.chunkBytes += data.length
      this.referenced += data.length
      if (pad > 0) {
        this.fit(pad)
        PAD.copy(this.buf, this.pos, 0, pad)
        this.pos += pad
      }
      return
    }
    this.fit(data.length + pad)
    const buf = this.buf
    let pos = this.pos
    // Names and handles are short: a loop beats Buffer#copy's call overhead below ~64 bytes.
    if (data.length <= 64) {
      for (let i = 0; i < data.length; i++) buf[pos++] = data[i] ?? 0
    } else {
      buf.set(data, pos)
      pos += data.length
    }
    for (let i = 0; i < pad; i++) buf[pos++] = 0
    this.pos = pos
  }

  private flushScratch(): void {
    if (this.pos > this.mark) {
      this.chunks.push(this.buf.subarray(this.mark, this.pos))
      this.chunkBytes += this.pos - this.mark
      this.mark = this.pos
    }
  }

  /**
   * Reserve a 4-byte word to fill in later (a count known only at the end).
   * Returns its position from the start of the message; chunks flushed since
   * do not move it.
   */
  reserve(): number {
    this.fit(4)
    const at = this.length
    this.pos += 4
    return at
  }

  /** Fill in a word reserved earlier, while it is still in the unflushed scratch. */
  patchU32(at: number, v: number): void {
    const i = at - this.chunkBytes + this.mark
    if (i < this.mark || i + 4 > this.pos) throw new XdrEncodeError('patch target already flushed')
    this.view.setUint32(i, v)
  }

  /** The encoded bytes as a list of chunks (scratch views and referenced opaques), in order. */
  finish(): Buffer[] {
    this.flushScratch()
    const out = this.chunks
    this.chunks = []
    this.chunkBytes = 0
    return out
  }

  /** The encoded bytes as one Buffer (copies when there are several chunks). */
  toBuffer(): Buffer {
    const chunks = this.finish()
    if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0]
    return Buffer.concat(chunks)
  }
}
