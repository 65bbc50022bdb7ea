import t from 'tap'
import { randomInt } from 'node:crypto'
import { ReplyRecords } from '../../../client/rpc/reply-records.ts'
import { FRAGMENT_COST } from '../../../xdr/record.ts'
import { seeded } from '../../helpers/lossy-proxy.ts'

/** One fragment: its mark and bytes. */
function fragment(bytes: Buffer, last: boolean): Buffer {
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE(((last ? 0x8000_0000 : 0) | bytes.length) >>> 0, 0)
  return Buffer.concat([mark, bytes])
}

/** A record of `length` bytes starting with the xid, filled with its low byte. */
function record(xid: number, length: number): Buffer {
  const b = Buffer.alloc(length, xid & 0xff)
  b.writeUInt32BE(xid, 0)
  return b
}

function collect(limit: number): { rr: ReplyRecords; records: Buffer[]; tooLarge: [number, number][] } {
  const records: Buffer[] = []
  const tooLarge: [number, number][] = []
  const rr = new ReplyRecords(limit, {
    record: r => records.push(Buffer.from(r)),
    tooLarge: (xid, length) => tooLarge.push([xid, length]),
  })
  return { rr, records, tooLarge }
}

// Chunk sizes come from a seeded generator: a failure replays with TSNFS_SEED.
const SEED = Number(process.env.TSNFS_SEED ?? randomInt(1, 0x7fff_ffff))
t.comment(`seed ${String(SEED)} (TSNFS_SEED=${String(SEED)} replays it)`)
const random = seeded(SEED)
const next = (max: number): number => Math.floor(random() * max)

/** Feed `bytes` in chunks of seeded random sizes (1..max). */
function feed(rr: ReplyRecords, bytes: Buffer, max: number): void {
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(bytes.length - at, 1 + next(max))
    rr.push(bytes.subarray(at, at + n))
    at += n
  }
}

t.test('records within the limit come out whole, however the stream is cut', async t => {
  const a = record(1, 100)
  const b = record(2, 5000)
  const c = record(3, 4)
  const stream = Buffer.concat([fragment(a, true), fragment(b.subarray(0, 1000), false), fragment(b.subarray(1000), true), fragment(c, true)])
  for (const max of [1, 3, 7, 64, 100_000]) {
    const { rr, records, tooLarge } = collect(8192)
    feed(rr, stream, max)
    t.strictSame(records, [a, b, c], `chunks of up to ${String(max)} bytes`)
    t.strictSame(tooLarge, [])
    t.equal(rr.buffered, 0)
  }
})

t.test('a record over the limit is reported once by xid and skipped; the next one comes through', async t => {
  const big = record(0x01020304, 10_000)
  const after = record(7, 50)
  // Over the limit in its second fragment: the first was kept, then dropped.
  const stream = Buffer.concat([fragment(big.subarray(0, 2000), false), fragment(big.subarray(2000), true), fragment(after, true)])
  for (const max of [1, 2, 5, 4096, 100_000]) {
    const { rr, records, tooLarge } = collect(4096)
    feed(rr, stream, max)
    t.strictSame(tooLarge, [[0x01020304, 10_000]], `chunks of up to ${String(max)} bytes`)
    t.strictSame(records, [after])
    t.equal(rr.buffered, 0, 'nothing of the skipped record is held')
  }
})

t.test('the xid is reported as soon as it arrives, before the rest of a huge record', async t => {
  const { rr, records, tooLarge } = collect(1024 * 1024)
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE(0xffff_ffff, 0)
  rr.push(mark)
  rr.push(Buffer.from([0, 0]))
  t.strictSame(tooLarge, [], 'half an xid is not enough')
  rr.push(Buffer.from([0, 9, 1, 2, 3]))
  t.strictSame(tooLarge, [[9, 0x7fff_ffff]])
  rr.push(Buffer.alloc(100_000))
  t.strictSame(tooLarge, [[9, 0x7fff_ffff]], 'reported once')
  t.equal(rr.buffered, 4, 'only the xid was kept')
  t.strictSame(records, [])
})

t.test('the limit counts each fragment\'s cost, and may change between records', async t => {
  const r = record(5, 1000)
  const exact = collect(1000 + FRAGMENT_COST)
  exact.rr.push(fragment(r, true))
  t.strictSame(exact.records, [r], 'a record at the limit is accepted')
  const under = collect(1000 + FRAGMENT_COST - 1)
  under.rr.push(fragment(r, true))
  t.strictSame(under.tooLarge, [[5, 1000]], 'one byte less is too little')
  under.rr.limit = 2000
  under.rr.push(fragment(r, true))
  t.strictSame(under.records, [r], 'a raised limit applies to the next record')
})

t.test('empty fragments and records too short for an xid', async t => {
  const { rr, records, tooLarge } = collect(200)
  rr.push(Buffer.concat([fragment(Buffer.alloc(0), false), fragment(Buffer.from([1, 2]), true), fragment(Buffer.alloc(0), true)]))
  t.strictSame(records, [Buffer.from([1, 2]), Buffer.alloc(0)], 'delivered as they are; the transport ignores them')
  // Thousands of empty fragments cost their bookkeeping: the record is skipped, and without an xid nobody hears of it.
  const many = Buffer.concat(Array.from({ length: 10 }, () => fragment(Buffer.alloc(0), false)))
  rr.push(Buffer.concat([many, fragment(Buffer.from([1]), true), fragment(record(8, 8), true)]))
  t.strictSame(tooLarge, [])
  t.strictSame(records.at(-1), record(8, 8))
})

/** Feed `bytes` as a socket's onread would: each read fills at most the buffer readTarget() gives, in reads of 1..max bytes. */
function feedDirect(rr: ReplyRecords, bytes: Buffer, max: number): { direct: number } {
  const scratch = Buffer.alloc(64 * 1024)
  let direct = 0
  for (let at = 0; at < bytes.length; ) {
    const target = rr.readTarget(scratch)
    const n = Math.min(bytes.length - at, target.length, 1 + next(max))
    bytes.copy(target, 0, at, at + n)
    if (target !== scratch) direct += n
    rr.pushRead(target, n)
    at += n
  }
  return { direct }
}

t.test('direct reads: a large record is read into its own buffer; small ones and skipped ones through scratch', async t => {
  const big = record(11, 1024 * 1024 + 100)
  const small = record(12, 300)
  const huge = record(13, 3 * 1024 * 1024)
  const stream = Buffer.concat([fragment(small, true), fragment(big, true), fragment(huge, true), fragment(small, true), fragment(big, true)])
  for (const max of [1000, 70_000, 2_000_000]) {
    const { rr, records, tooLarge } = collect(2 * 1024 * 1024)
    const { direct } = feedDirect(rr, stream, max)
    t.strictSame(records.map(r => r.readUInt32BE(0)), [12, 11, 12, 11], `records in order (reads of up to ${String(max)} bytes)`)
    t.ok(records[1]?.equals(big) === true && records[3]?.equals(big) === true, 'the large records byte-exact')
    t.strictSame(tooLarge, [[13, 3 * 1024 * 1024]], 'the one over the limit skipped')
    t.ok(direct >= 2 * (big.length - 64 * 1024), `most of the large records went straight to their buffers (${String(direct)} bytes)`)
    t.equal(rr.buffered, 0)
  }
})
