/*
 * One APPEND's worth of changes for the sender: read ahead from an export's
 * change log, cut to the batch caps (changes, and wire bytes with the WRITE
 * data counted), and each WRITE filled with the primary's current bytes of
 * its range (server/replication/README.md: the log carries no data), or
 * with the bytes it wrote when the log still keeps them in memory.
 */
import type { Change } from '../../vfs/replica/change.ts'
import { repl_change as replChangeCodec } from '../../xdr/generated/replication.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import type { ChangeSource, DataSource, LoggedChange } from './log-types.ts'
import type { WireChange } from './append-wire.ts'
import { changeBytes, changeToRepl } from './change-codec.ts'

export interface BatchCaps {
  changes: number
  bytes: number
}

export interface Batch {
  first: bigint
  /** As they go on the wire (append-wire.ts): the logged XDR, and a WRITE's data. */
  changes: WireChange[]
  /** Wire bytes of the changes, data included. */
  bytes: number
}

const EMPTY = Buffer.alloc(0)

/** The XDR size of a change as shipped, computed by encoding it: its fields with the data left out, plus the data padded to 4 (RFC 4506 §4.10). */
export function shippedSize(c: Change): number {
  const w = new XdrWriter(128)
  replChangeCodec.encode(w, changeToRepl(c.op === 'write' ? { ...c, data: EMPTY } : c))
  let n = 0
  for (const chunk of w.finish()) n += chunk.length
  return c.op === 'write' ? n + Math.ceil(c.length / 4) * 4 : n
}

/**
 * A logged change's size on the wire without encoding it again: the log's
 * record holds the change's XDR with a WRITE's data left out (plus its own
 * framing, so this errs high, which only makes batches smaller), and the
 * data adds its length padded to 4.
 */
function wireBytes(l: LoggedChange): number {
  const c = l.change
  return c.op === 'write' && c.data === null ? l.bytes + Math.ceil(c.length / 4) * 4 : l.bytes
}

/** Exactly `length` bytes of the range: a shorter read (the file shrank since) or a vanished object is zero-filled, and the later change that did it converges the standby. */
async function rangeBytes(data: DataSource, c: Extract<Change, { op: 'write' }>): Promise<Buffer> {
  if (c.data !== null && c.data.length === c.length) return c.data
  const got = await data.readRange(c.ref, c.offset, c.length)
  if (got === null) return Buffer.alloc(c.length)
  if (got.length === c.length) return got
  if (got.length > c.length) return got.subarray(0, c.length)
  return Buffer.concat([got, Buffer.alloc(c.length - got.length)])
}

/**
 * The changes read from one export's log but not yet shipped, in order:
 * take() reads more when it runs dry, so one log read serves several
 * batches when the WRITE data, not the change count, fills them.
 */
export class ReadAhead {
  private buffered: { logged: LoggedChange; size: number }[] = []
  private readonly source: ChangeSource
  private readonly data: DataSource
  private readonly caps: BatchCaps

  constructor(source: ChangeSource, data: DataSource, caps: BatchCaps) {
    this.source = source
    this.data = data
    this.caps = caps
  }

  /** Bytes read and not yet shipped (for lag in bytes). */
  get bufferedBytes(): number {
    let n = 0
    for (const b of this.buffered) n += b.size
    return n
  }

  /** Forget what was read (the standby asked for an earlier position). */
  reset(): void {
    this.buffered = []
  }

  /**
   * The batch starting at `first`: empty when the log holds nothing from
   * there, or when `partial` is false and the batch would not be full (cut by
   * the change or byte cap). Throws ReplicationError('REPL_TRIMMED') from the log.
   */
  async take(first: bigint, partial = true): Promise<Batch> {
    const end = this.buffered.at(-1)?.logged.seq ?? 0n
    // Read again when the buffer is not at `first`, or when more was logged since and the buffer alone makes no full batch.
    if (this.buffered[0]?.logged.seq !== first || (this.buffered.length < this.caps.changes && this.source.lastSeq() > end)) {
      const read = await this.source.read(first, this.caps.changes, this.caps.bytes)
      this.buffered = read.map((logged, i) => {
        if (logged.seq !== first + BigInt(i)) throw new Error(`change log returned seq ${logged.seq} at ${first + BigInt(i)}`)
        return { logged, size: wireBytes(logged) }
      })
    }
    let n = 0
    let bytes = 0
    while (n < this.buffered.length && n < this.caps.changes) {
      const size = (this.buffered[n] as { size: number }).size
      if (n > 0 && bytes + size > this.caps.bytes) break
      bytes += size
      n++
    }
    const full = n === this.caps.changes || n < this.buffered.length
    if (!full && !partial) return { first, changes: [], bytes: 0 }
    const taken = this.buffered.splice(0, n)
    const changes: WireChange[] = []
    for (const { logged } of taken) {
      const c = logged.change
      // The log's bytes as they are (a source without them: encoded once here); a WRITE logged
      // without data gets the bytes it wrote when the log still holds them, else the primary's
      // current bytes of its range, spliced in.
      const xdr = logged.xdr ?? changeBytes(c)
      if (c.op !== 'write' || c.data !== null) changes.push({ xdr, data: null })
      else changes.push({ xdr, data: logged.data?.length === c.length ? logged.data : await rangeBytes(this.data, c) })
    }
    return { first, changes, bytes }
  }
}
