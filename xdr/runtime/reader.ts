import { XdrDecodeError } from './errors.ts'

const TWO32 = 0x1_0000_0000

/**
 * A bounds-checked cursor over one Buffer (RFC 4506). Every read checks the
 * remaining length first and throws XdrDecodeError, never RangeError.
 * Opaque data comes back as views into the same memory (zero copy): callers
 * that keep a view beyond the request must copy it.
 */
export class XdrReader {
  readonly buf: Buffer
  pos: number
  readonly end: number
  private readonly view: DataView

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf
    this.pos = start
    this.end = end
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  get remaining(): number {
    return this.end - this.pos
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) {
      throw new XdrDecodeError('XDR_SHORT_BUFFER', `${what}: need ${String(n)} bytes, ${String(this.end - this.pos)} left`)
    }
  }

  u32(): number {
    this.need(4, 'unsigned int')
    const v = this.view.getUint32(this.pos)
    this.pos += 4
    return v
  }

  i32(): number {
    this.need(4, 'int')
    const v = this.view.getInt32(this.pos)
    this.pos += 4
    return v
  }

  u64(): bigint {
    this.need(8, 'unsigned hyper')
    const hi = this.view.getUint32(this.pos)
    const lo = this.view.getUint32(this.pos + 4)
    this.pos += 8
    // Two 32-bit reads and one BigInt are faster than getBigUint64 (LIMITS.md).
    return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo)
  }

  i64(): bigint {
    return BigInt.asIntN(64, this.u64())
  }

  /** RFC 4506 §4.4: a bool is an enum of FALSE = 0 and TRUE = 1; anything else is invalid. */
  bool(): boolean {
    const v = this.u32()
    if (v > 1) throw new XdrDecodeError('XDR_BAD_BOOL', `bool: ${String(v)}`)
    return v === 1
  }

  /** RFC 4506 §4.9: exactly n bytes plus padding; returns a view. Padding is skipped unchecked, for interop. */
  fixedOpaque(n: number): Buffer {
    // Not (n + 3) & ~3: bitwise ops are 32-bit signed, and a hostile length near 2^32 would wrap.
    const padded = n + ((4 - (n % 4)) % 4)
    this.need(padded, 'opaque[]')
    const v = this.buf.subarray(this.pos, this.pos + n)
    this.pos += padded
    return v
  }

  /** RFC 4506 §4.10: the length is checked against max before anything is read; returns a view. */
  opaque(max: number = TWO32 - 1): Buffer {
    const n = this.u32()
    if (n > max) throw new XdrDecodeError('XDR_TOO_LONG', `opaque<${String(max)}>: length ${String(n)}`)
    return this.fixedOpaque(n)
  }

  /** RFC 4506 §4.11, decoded as UTF-8 (only for strings that are not file names). */
  string(max: number = TWO32 - 1): string {
    return this.opaque(max).toString('utf8')
  }

  /**
   * A counted-array length (RFC 4506 §4.13), capped by the declared bound and
   * by what the remaining bytes can hold, before the caller allocates anything.
   */
  arrayLength(max: number, minElementSize: number): number {
    const n = this.u32()
    if (n > max) throw new XdrDecodeError('XDR_TOO_LONG', `array<${String(max)}>: count ${String(n)}`)
    if (minElementSize > 0 && n * minElementSize > this.end - this.pos) {
      throw new XdrDecodeError('XDR_SHORT_BUFFER', `array: ${String(n)} elements cannot fit in ${String(this.end - this.pos)} bytes`)
    }
    return n
  }

  /** Throws unless every byte has been consumed. */
  done(): void {
    if (this.pos !== this.end) {
      throw new XdrDecodeError('XDR_TRAILING_BYTES', `${String(this.end - this.pos)} bytes left over`)
    }
  }
}
