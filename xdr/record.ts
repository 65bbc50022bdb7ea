/*
 * RFC 5531 §11: record marking for stream transports. Each record is one or
 * more fragments; each fragment starts with a 4-byte big-endian header whose
 * bit 31 marks the last fragment and whose low 31 bits are the fragment length.
 * Pure: chunks in, records out; no sockets.
 */

const LAST_FRAGMENT = 0x8000_0000
const LENGTH_MASK = 0x7fff_ffff
/** Bytes each fragment counts against the record limit, for the bookkeeping it costs (see push). */
export const FRAGMENT_COST = 64

export type RecordErrorCode = 'RECORD_TOO_LARGE'

export class RecordError extends Error {
  readonly code: RecordErrorCode
  constructor(code: RecordErrorCode, message: string) {
    super(message)
    this.name = 'RecordError'
    this.code = code
  }
}

/**
 * Reassembles records from stream chunks. The declared fragment lengths are
 * checked against maxRecordSize before anything is allocated for them. A
 * record lying inside one chunk comes back as a view of that chunk; one that
 * spans chunks (or fragments) is copied once (undici's consume(n) idea).
 */
export interface RecordReaderOptions {
  /**
   * Reassemble large records (WRITE data) into reused buffers instead of
   * fresh ones (fresh memory is page-faulted in on every request). The owner
   * must then call release(record) once nothing refers to the record any more.
   * `true`: a pool of this reader's own; or a pool shared by several readers.
   */
  pool?: boolean | RecordBufferPool
}

/** Records at least this large that span chunks are assembled in pooled buffers. */
const POOL_MIN = 64 * 1024
/** Capacity of a pooled buffer: a 1 MiB WRITE with its header and handle. */
export const RECORD_BUFFER_SIZE = 1024 * 1024 + 64 * 1024
/** Direct reads start once 1/DIRECT_AFTER of a large fragment has arrived (see readTarget). */
const DIRECT_AFTER = 32
/** Free buffers kept by a reader's own pool. */
const POOL_KEEP = 8

export interface RecordPoolLimits {
  /** Free buffers kept for reuse, in bytes (whole buffers of RECORD_BUFFER_SIZE; beyond it a given-back buffer is dropped). */
  maxBytes: number
  /** What trim() keeps (default 0). */
  floorBytes?: number
}

/**
 * Free record buffers (RECORD_BUFFER_SIZE bytes each), bounded in bytes.
 * Shared by the connections of a server, it holds enough for a burst of
 * WRITEs (32 in flight is common) without every connection keeping its own;
 * the owner calls trim() once the burst is over (idle), which lets the
 * buffers beyond the floor go to the garbage collector.
 */
export class RecordBufferPool {
  private free: Buffer[] = []
  private readonly keep: number
  private readonly floor: number
  /** Buffers allocated because none was free (a pool too small for the load shows here). */
  allocations = 0

  constructor(limits: RecordPoolLimits) {
    this.keep = Math.floor(limits.maxBytes / RECORD_BUFFER_SIZE)
    this.floor = Math.min(this.keep, Math.floor((limits.floorBytes ?? 0) / RECORD_BUFFER_SIZE))
  }

  take(): Buffer {
    const b = this.free.pop()
    if (b !== undefined) return b
    this.allocations++
    return Buffer.allocUnsafeSlow(RECORD_BUFFER_SIZE)
  }

  give(b: Buffer): void {
    if (this.free.length < this.keep) this.free.push(b)
  }

  /** Free buffers held. */
  get size(): number {
    return this.free.length
  }

  /** Bytes of free buffers held. */
  get bytes(): number {
    return this.free.length * RECORD_BUFFER_SIZE
  }

  /** Keep only the floor; returns the bytes let go. */
  trim(): number {
    const dropped = this.free.length - this.floor
    if (dropped <= 0) return 0
    this.free = this.free.slice(0, this.floor)
    return dropped * RECORD_BUFFER_SIZE
  }
}

export class RecordReader {
  private readonly maxRecordSize: number
  private readonly pool: RecordBufferPool | null
  /** The pooled buffers handed out in records, by their memory. */
  private readonly lent = new Map<ArrayBufferLike, Buffer>()
  private readonly queue: Buffer[] = []
  private queued = 0
  /** Length of the fragment being read, or -1 while waiting for a fragment header. */
  private fragmentLength = -1
  private lastFragment = false
  /** Fragments of the current record read so far, and their total length. */
  private fragments: Buffer[] = []
  private fragmentCount = 0
  private recordLength = 0
  /** Direct reads: the record buffer a large fragment is being read into, how much of it is filled, and the view handed out last. */
  private direct: Buffer | null = null
  private directFilled = 0
  private target: Buffer | null = null

  constructor(maxRecordSize: number, options: RecordReaderOptions = {}) {
    this.maxRecordSize = maxRecordSize
    this.pool = options.pool === true ? new RecordBufferPool({ maxBytes: POOL_KEEP * RECORD_BUFFER_SIZE }) : options.pool === false || options.pool === undefined ? null : options.pool
  }

  /** Give back a record's pooled buffer (pool mode); anything else is ignored. */
  release(record: Buffer): void {
    const whole = this.lent.get(record.buffer)
    if (whole === undefined) return
    this.lent.delete(record.buffer)
    this.pool?.give(whole)
  }

  /** Bytes received but not yet returned as part of a record (for tests and stats). */
  get buffered(): number {
    return this.queued + this.recordLength + this.directFilled
  }

  /**
   * Direct reads, for a reader fed by a socket's `onread` (pool mode): where
   * the next read should land. Once a large fragment's header has arrived,
   * that is the unfilled rest of the fragment's own (pooled) buffer, so the
   * kernel copies WRITE data straight into the record: no read buffer is
   * allocated and nothing is copied to reassemble it. Anything else goes to
   * `scratch`, which may be shared: pushRead() copies out of it before
   * returning. Never reads past the fragment, so the next header lands in
   * scratch.
   */
  readTarget(scratch: Buffer): Buffer {
    // Only once a 32nd of the fragment is here: a peer sending bare headers of large fragments must
    // not make us reserve a record buffer per 4 bytes (a real client's first read brings ~64 KiB).
    if (
      this.direct === null &&
      this.pool !== null &&
      this.fragmentLength >= POOL_MIN &&
      this.fragmentLength <= RECORD_BUFFER_SIZE &&
      this.queued * DIRECT_AFTER >= this.fragmentLength
    ) {
      const dest = this.pooled(this.fragmentLength)
      // The fragment's first bytes came in with its header: move them in (push left fewer than a fragment queued).
      let filled = 0
      for (const c of this.queue) filled += c.copy(dest, filled)
      this.queue.length = 0
      this.queued = 0
      this.direct = dest
      this.directFilled = filled
    }
    this.target = this.direct === null ? scratch : this.direct.subarray(this.directFilled)
    return this.target
  }

  /** `n` bytes were read into the buffer readTarget() returned last. Returns the records completed. */
  pushRead(buf: Buffer, n: number): Buffer[] {
    const dest = this.direct
    if (dest === null || buf !== this.target) return this.push(Buffer.from(buf.subarray(0, n)))
    this.directFilled += n
    if (this.directFilled < this.fragmentLength) return []
    this.direct = null
    this.directFilled = 0
    this.fragments.push(dest)
    this.recordLength += this.fragmentLength
    this.fragmentLength = -1
    // Nothing was read past the fragment, so nothing is queued behind it.
    return this.lastFragment ? [this.takeRecord()] : []
  }

  push(chunk: Buffer): Buffer[] {
    if (this.direct !== null) throw new Error('RecordReader.push() while a fragment is being read directly')
    const records: Buffer[] = []
    if (chunk.length > 0) {
      this.queue.push(chunk)
      this.queued += chunk.length
    }
    for (;;) {
      if (this.fragmentLength < 0) {
        if (this.queued < 4) break
        const header = this.consume(4).readUInt32BE(0)
        const length = header & LENGTH_MASK
        // Checked before the fragment is buffered or allocated: a hostile mark cannot make us reserve memory.
        // Each fragment is also charged a fixed cost, so a record sent as millions of tiny (or empty)
        // fragments cannot hold ~100 bytes of bookkeeping per wire byte, or a connection forever.
        this.fragmentCount++
        const charged = this.recordLength + length + FRAGMENT_COST * this.fragmentCount
        if (charged > this.maxRecordSize) {
          throw new RecordError(
            'RECORD_TOO_LARGE',
            `record of at least ${this.recordLength + length} bytes in ${this.fragmentCount} fragments exceeds the limit of ${this.maxRecordSize}`,
          )
        }
        this.fragmentLength = length
        this.lastFragment = (header & LAST_FRAGMENT) !== 0
      }
      if (this.queued < this.fragmentLength) break
      if (this.fragmentLength > 0) {
        this.fragments.push(this.consume(this.fragmentLength))
        this.recordLength += this.fragmentLength
      }
      this.fragmentLength = -1
      if (this.lastFragment) {
        records.push(this.takeRecord())
      }
    }
    return records
  }

  private takeRecord(): Buffer {
    const fragments = this.fragments
    const length = this.recordLength
    this.fragments = []
    this.recordLength = 0
    this.fragmentCount = 0
    const only = fragments[0]
    if (fragments.length === 1 && only !== undefined) return only
    const joined = Buffer.concat(fragments, length)
    for (const f of fragments) this.release(f)
    return joined
  }

  /** Take n bytes from the queue (n <= queued): a view when they lie in one chunk, else one copy. */
  private consume(n: number): Buffer {
    this.queued -= n
    const head = this.queue[0]
    if (head === undefined) return Buffer.alloc(0)
    if (head.length > n) {
      this.queue[0] = head.subarray(n)
      return head.subarray(0, n)
    }
    if (head.length === n) {
      this.queue.shift()
      return head
    }
    const out = this.pool !== null && n >= POOL_MIN && n <= RECORD_BUFFER_SIZE ? this.pooled(n) : Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const c = this.queue[0]
      if (c === undefined) break
      const take = Math.min(c.length, n - filled)
      c.copy(out, filled, 0, take)
      filled += take
      if (take === c.length) this.queue.shift()
      else this.queue[0] = c.subarray(take)
    }
    return out
  }

  private pooled(n: number): Buffer {
    const whole = this.pool?.take() ?? Buffer.allocUnsafeSlow(RECORD_BUFFER_SIZE)
    this.lent.set(whole.buffer, whole)
    return whole.subarray(0, n)
  }
}

/**
 * The 4-byte record mark for a record sent as one last fragment. Callers write
 * the mark and then the chunks (cork + writes, or writev): nothing is copied.
 */
export function frameRecord(chunks: readonly Buffer[], length = totalLength(chunks)): Buffer {
  if (length > LENGTH_MASK) throw new RangeError(`record of ${length} bytes does not fit one fragment`)
  const mark = Buffer.allocUnsafe(4)
  mark.writeUInt32BE((LAST_FRAGMENT | length) >>> 0, 0)
  return mark
}

/** The record mark and the record's chunks copied into one buffer (small records: one write instead of several). */
export function framedRecord(chunks: readonly Buffer[], length = totalLength(chunks)): Buffer {
  if (length > LENGTH_MASK) throw new RangeError(`record of ${length} bytes does not fit one fragment`)
  const b = Buffer.allocUnsafe(4 + length)
  b.writeUInt32BE((LAST_FRAGMENT | length) >>> 0, 0)
  let off = 4
  for (const c of chunks) off += c.copy(b, off)
  return b
}

export function totalLength(chunks: readonly Buffer[]): number {
  let n = 0
  for (const c of chunks) n += c.length
  return n
}
